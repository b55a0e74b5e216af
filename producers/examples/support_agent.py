"""A realistic agent loop instrumented with the agentaudit SDK.

A customer-support agent plans, calls a model, calls tools in parallel on a thread pool,
asks a human before a refund, hands billing questions to another agent and records its
decisions, all as one causal trace. The model and tools are stand-ins (no network); the
events are real.

Run it against any broker (``agentaudit up`` prints one; or the embedded tansu)::

    python -m agentaudit.producers.examples.support_agent --bootstrap 127.0.0.1:9092 --tickets 3

then read the topic back and verify the chains::

    python -m agentaudit.producers.examples.verify --bootstrap 127.0.0.1:9092
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

from agentaudit.producers import AuditClient

PRICES = {"gpt-4o": (2.5e-6, 10e-6)}  # USD per input / output token


def fake_model(prompt: str, rng: random.Random) -> tuple[str, int, int]:
    time.sleep(rng.uniform(0.005, 0.02))
    return ("refund" if "broken" in prompt else "answer"), len(prompt.split()) * 4, rng.randint(20, 120)


def handle_ticket(audit: AuditClient, ticket: dict[str, Any], rng: random.Random) -> str:
    with audit.action("invoke_agent", name="support-bot", input=ticket) as run:
        with audit.action("plan", name="triage"):
            audit.decision("route", output="tools+model", reason="ticket mentions an order")

        with audit.action("chat", name="gpt-4o", input={"prompt": ticket["text"]}) as call:
            intent, tokens_in, tokens_out = fake_model(ticket["text"], rng)
            price_in, price_out = PRICES["gpt-4o"]
            call.set_cost(input_tokens=tokens_in, output_tokens=tokens_out, model="gpt-4o",
                          cost_usd=tokens_in * price_in + tokens_out * price_out)
            call.set_output(intent)

        @audit.action("execute_tool", name="crm.lookup")
        def lookup(customer: int) -> dict[str, Any]:
            time.sleep(0.003)
            return {"customer": customer, "tier": "gold"}

        @audit.action("execute_tool", name="orders.get")
        def order(order_id: str) -> dict[str, Any]:
            time.sleep(0.004)
            return {"order": order_id, "amount": 40}

        with audit.executor(2) as pool:  # children on pool threads keep the run as their parent
            customer = pool.submit(lookup, ticket["customer"])
            details = pool.submit(order, ticket["order"])
            facts = {**customer.result(), **details.result()}

        if intent == "refund":
            args = {"order": facts["order"], "amount": facts["amount"]}
            audit.approval("alice@support", name="payments.refund", input=args)
            handoff = audit.handoff("billing-bot", input=args)
            with audit.action("execute_tool", name="payments.refund", agent="billing-bot", parent=handoff,
                              input=args) as refund:
                refund.set_output({"status": "refunded"})
                refund.link(run.action_id)
        audit.message("reply", to=f"customer-{ticket['customer']}", role="assistant",
                      content=f"We looked at order {ticket['order']}.")
        run.set_output(intent)
        return intent


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default=None, help="Kafka bootstrap servers (AGENTAUDIT_BOOTSTRAP_SERVERS)")
    parser.add_argument("--topic", default=None, help="action topic, default agentaudit.actions")
    parser.add_argument("--tickets", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    with AuditClient(args.bootstrap, tenant="acme", agent="support-bot", topic=args.topic) as audit:
        for i in range(args.tickets):
            text = rng.choice(["my blender arrived broken", "where is my parcel?", "broken screen on arrival"])
            ticket = {"id": i, "customer": 1000 + i, "order": f"ord-{i:04d}", "text": text}
            print(f"ticket {i}: {handle_ticket(audit, ticket, rng)}")
        delivered = audit.flush(30)
        print(f"delivered={delivered} stats={audit.stats()}")


if __name__ == "__main__":
    main()
