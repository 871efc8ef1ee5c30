// tsclient_flow.mjs: one tool call through the TypeScript MCP SDK client's
// own task flow (client.experimental.tasks.callToolStream), answering the
// server's elicitation and sampling requests, for
// cmd/mcptasks/tsclient_test.go. It is an independent client: it runs the
// SDK's code as any TS client would, so the test checks mcptasks against
// another implementation's reading of 2025-11-25 tasks, not against our own.
//
//   node tools/tsclient_flow.mjs --url http://127.0.0.1:PORT/mcp --tool ask_user \
//     [--args '{"question":"…"}'] [--token T] [--answer TEXT] [--no-get-stream] \
//     [--cancel-on-input] [--timeout-ms N]
//
// Every event is one JSON line on stdout ({"event": …}); the exit status is 0
// when the flow ran to its end (whatever the tool's outcome), else non-zero.
import { parseArgs } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
    CallToolResultSchema,
    CreateMessageRequestSchema,
    ElicitRequestSchema,
    TaskStatusNotificationSchema
} from '@modelcontextprotocol/sdk/types.js';

const { values: opt } = parseArgs({
    options: {
        url: { type: 'string' },
        token: { type: 'string' },
        tool: { type: 'string' },
        args: { type: 'string', default: '{}' },
        answer: { type: 'string', default: 'yes' },
        'no-get-stream': { type: 'boolean', default: false },
        'cancel-on-input': { type: 'boolean', default: false },
        'timeout-ms': { type: 'string', default: '30000' }
    }
});
if (!opt.url || !opt.tool) {
    console.error('usage: tsclient_flow.mjs --url URL --tool NAME [--args JSON] [--token T] [--answer TEXT] [--no-get-stream] [--cancel-on-input] [--timeout-ms N]');
    process.exit(2);
}
const timeoutMs = Number(opt['timeout-ms']);
const emit = ev => process.stdout.write(JSON.stringify(ev) + '\n');
const errJSON = e => ({ code: e?.code, message: String(e?.message ?? e) });

// A watchdog: a flow that hangs (a request nobody delivers) must end with a
// clear event, not be killed silently by the test's own deadline.
setTimeout(() => {
    emit({ event: 'timeout', afterMs: timeoutMs });
    process.exit(3);
}, timeoutMs + 5000).unref();

// via records which HTTP exchange carried each server-to-client request
// ("GET" for the standalone stream, else the POSTed method, e.g.
// "tasks/result"): the SDK hands requests to handlers without saying so.
const via = new Map();

// The transport's fetch option is the SDK's supported hook for HTTP. It
// serves two purposes here: it tags SSE bodies for `via`, and, with
// --no-get-stream, answers the standalone GET with 405 without sending it.
// The SDK always opens that GET once the server accepts
// notifications/initialized, and has no option to skip it; a 405 is how the
// spec lets a server decline it, and the SDK treats it as "no stream".
async function tracingFetch(url, init) {
    const method = init?.method ?? 'GET';
    if (method === 'GET' && opt['no-get-stream']) {
        emit({ event: 'http', method: 'GET', status: 405, note: 'standalone GET stream not opened (--no-get-stream)' });
        return new Response(null, { status: 405, statusText: 'Method Not Allowed' });
    }
    const res = await fetch(url, init);
    let label = 'GET';
    if (method === 'POST') {
        try {
            label = JSON.parse(init.body).method ?? 'response';
        } catch {
            label = 'POST';
        }
    }
    if (method === 'GET') {
        emit({ event: 'http', method: 'GET', status: res.status });
    }
    if (!res.body || !(res.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
        return res;
    }
    // Pass the bytes through unchanged, reading each complete SSE event's data
    // on the way for requests (a method and an id).
    const dec = new TextDecoder();
    let buf = '';
    const tap = new TransformStream({
        transform(chunk, ctl) {
            buf += dec.decode(chunk, { stream: true }).replace(/\r\n?/g, '\n');
            let i;
            while ((i = buf.indexOf('\n\n')) >= 0) {
                const data = buf.slice(0, i).split('\n').filter(l => l.startsWith('data:')).map(l => l.slice(5).trimStart()).join('\n');
                buf = buf.slice(i + 2);
                try {
                    const m = JSON.parse(data);
                    if (m.method && m.id !== undefined) via.set(String(m.id), label);
                } catch {
                    // not JSON (a priming event): nothing to record
                }
            }
            ctl.enqueue(chunk);
        }
    });
    return new Response(res.body.pipeThrough(tap), { status: res.status, statusText: res.statusText, headers: res.headers });
}

const client = new Client(
    { name: 'mcptasks-tsclient-flow', version: '1.0.0' },
    { capabilities: { elicitation: { form: {} }, sampling: {} } }
);

// With --cancel-on-input the answers wait for the cancel, so that an answer
// cannot win a race with it; they are then sent late, and must be ignored.
let cancelled;
const cancelDone = new Promise(r => (cancelled = r));

async function answer(method, request, extra, result) {
    emit({ event: 'request', method, id: extra.requestId, via: via.get(String(extra.requestId)) ?? null, params: request.params });
    if (opt['cancel-on-input']) await cancelDone;
    emit({ event: 'answered', method, id: extra.requestId, late: opt['cancel-on-input'], answer: result });
    return result;
}
client.setRequestHandler(ElicitRequestSchema, (req, extra) =>
    answer('elicitation/create', req, extra, { action: 'accept', content: { answer: opt.answer } })
);
client.setRequestHandler(CreateMessageRequestSchema, (req, extra) =>
    answer('sampling/createMessage', req, extra, {
        role: 'assistant',
        model: 'canned-model-1',
        content: { type: 'text', text: `canned reply: ${opt.answer}` }
    })
);
client.setNotificationHandler(TaskStatusNotificationSchema, n => emit({ event: 'statusNotification', params: n.params }));
client.onerror = e => emit({ event: 'clientError', error: errJSON(e) });

const headers = opt.token ? { Authorization: `Bearer ${opt.token}` } : undefined;
const transport = new StreamableHTTPClientTransport(new URL(opt.url), { fetch: tracingFetch, requestInit: { headers } });
await client.connect(transport);
emit({ event: 'connected', sessionId: transport.sessionId, serverCapabilities: client.getServerCapabilities() });

// As a client would: list the tools first, so callToolStream itself decides
// (from execution.taskSupport and the server's tasks capability) to run the
// call as a task.
await client.listTools();
emit({ event: 'tools', isToolTask: client.isToolTask(opt.tool) });

const reqOpts = { timeout: timeoutMs };
let taskId;
const stream = client.experimental.tasks.callToolStream(
    { name: opt.tool, arguments: JSON.parse(opt.args) },
    CallToolResultSchema,
    reqOpts
);
for await (const msg of stream) {
    switch (msg.type) {
        case 'taskCreated':
            taskId = msg.task.taskId;
            emit({ event: 'taskCreated', task: msg.task });
            break;
        case 'taskStatus':
            emit({ event: 'taskStatus', task: msg.task });
            // The generator is paused at this yield: cancelling here comes
            // before its tasks/result.
            if (msg.task.status === 'input_required' && opt['cancel-on-input']) {
                try {
                    emit({ event: 'cancel', task: await client.experimental.tasks.cancelTask(taskId, reqOpts) });
                } catch (e) {
                    emit({ event: 'cancelError', error: errJSON(e) });
                }
                cancelled();
            }
            break;
        case 'result':
            emit({ event: 'result', result: msg.result });
            break;
        case 'error':
            emit({ event: 'error', error: errJSON(msg.error) });
            break;
    }
}
// The stream's own last tasks/get may predate the end (it stops at
// input_required and reads tasks/result): read where the task ended.
if (taskId) {
    try {
        emit({ event: 'finalTask', task: await client.experimental.tasks.getTask(taskId, reqOpts) });
    } catch (e) {
        emit({ event: 'finalTaskError', error: errJSON(e) });
    }
}
await transport.close();
process.exit(0);
