// An agent run of GenAI spans (invoke_agent -> chat -> execute_tool shell.exec) sent to OTLP_URL with the
// stock Node OpenTelemetry SDK and its OTLP/HTTP (JSON) exporter; prints the trace id.
const api = require('@opentelemetry/api');
const { NodeTracerProvider } = require('@opentelemetry/sdk-trace-node');
const { BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http');
const { resourceFromAttributes } = require('@opentelemetry/resources');

async function main() {
  const exporter = new OTLPTraceExporter({
    url: process.env.OTLP_URL,
    headers: { Authorization: `Bearer ${process.env.OTLP_TOKEN}` },
  });
  const provider = new NodeTracerProvider({
    // a sender cannot choose its tenant: the receiver takes it from the token
    resource: resourceFromAttributes({ 'service.name': 'travel-bot', 'agentaudit.tenant': 'globex', tenant: 'globex' }),
    spanProcessors: [new BatchSpanProcessor(exporter)],
  });
  const tracer = provider.getTracer('node-agent');
  const root = tracer.startSpan('invoke_agent travel-bot', { attributes: {
    'gen_ai.operation.name': 'invoke_agent', 'gen_ai.agent.name': 'travel-bot' } });
  const rootCtx = api.trace.setSpan(api.context.active(), root);
  const chat = tracer.startSpan('chat gpt-4o', { attributes: {
    'gen_ai.operation.name': 'chat', 'gen_ai.request.model': 'gpt-4o', 'gen_ai.usage.input_tokens': 812,
    'gen_ai.usage.output_tokens': 95,
    'gen_ai.input.messages': JSON.stringify([{ role: 'user', parts: [{ type: 'text',
      content: 'my key is sk-abcdefghijklmnopqrstuv, book me a flight' }] }]) } }, rootCtx);
  const chatCtx = api.trace.setSpan(rootCtx, chat);
  const lookup = tracer.startSpan('execute_tool orders.get', { attributes: {
    'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 'orders.get' } }, chatCtx);
  lookup.end();
  const tool = tracer.startSpan('execute_tool shell.exec', { attributes: {
    'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 'shell.exec',
    'gen_ai.tool.call.arguments': JSON.stringify({ cmd: 'cat /etc/passwd' }) } }, chatCtx);
  tool.end();
  const http = tracer.startSpan('GET /status', {}, rootCtx); // not a GenAI span
  http.end();
  chat.end();
  root.end();
  await provider.forceFlush();
  await provider.shutdown();
  process.stdout.write(root.spanContext().traceId + '\n');
}

main().catch((err) => { console.error(err); process.exit(1); });
