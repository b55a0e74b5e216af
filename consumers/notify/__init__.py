"""Notifications routed by ownership: ``agentaudit notify`` tells an incident's owning team when it opens,
is acknowledged, escalates, resolves or reopens, on Slack, PagerDuty, Alertmanager or a signed webhook.

>>> Notifier(KafkaSettings(), NotifySettings(), load_owners("owners.yaml")).run(stop_event)
"""

from agentaudit.consumers.notify.delivery import Delivered, Sender
from agentaudit.consumers.notify.payloads import Notification, deep_link, render, sign, slack_escape, verify_signature
from agentaudit.consumers.notify.routes import (
    AlertmanagerRoute,
    PagerDutyRoute,
    Route,
    RouteTable,
    SlackRoute,
    WebhookRoute,
    load_routes,
)
from agentaudit.consumers.notify.settings import NotifySettings
from agentaudit.consumers.notify.worker import Notifier

__all__ = [
    "AlertmanagerRoute",
    "Delivered",
    "Notification",
    "Notifier",
    "NotifySettings",
    "PagerDutyRoute",
    "Route",
    "RouteTable",
    "Sender",
    "SlackRoute",
    "WebhookRoute",
    "deep_link",
    "load_routes",
    "render",
    "sign",
    "slack_escape",
    "verify_signature",
]
