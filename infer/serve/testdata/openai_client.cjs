// Drives a sluice server with the official openai npm package; prints one
// JSON object of what each call returned, for openai_test.go to check.
// Usage: NODE_PATH=.../node_modules OPENAI_BASE_URL=http://host/v1 OPENAI_API_KEY=k node openai_client.cjs
const OpenAI = require('openai');

async function main() {
  const client = new OpenAI({ maxRetries: 0, timeout: 60000 });
  const out = {};
  const models = await client.models.list();
  out.models = models.data.map((m) => m.id);

  const c = await client.completions.create({
    model: 'llama3', prompt: 'The quick brown fox', max_tokens: 16, temperature: 0, return_token_ids: true,
  });
  out.completion = { text: c.choices[0].text, finish: c.choices[0].finish_reason, token_ids: c.choices[0].token_ids, usage: c.usage };

  const lp = await client.completions.create({
    model: 'llama3', prompt: 'The quick brown fox', max_tokens: 4, temperature: 0, logprobs: 3,
  });
  out.completion_logprobs = lp.choices[0].logprobs;

  const stop = await client.completions.create({
    model: 'llama3', prompt: 'The quick brown fox', max_tokens: 40, temperature: 0, stop: ['e', 'o'],
  });
  out.stop = { text: stop.choices[0].text, finish: stop.choices[0].finish_reason };

  const stream = await client.completions.create({
    model: 'llama3', prompt: 'The quick brown fox', max_tokens: 16, temperature: 0, stream: true,
    stream_options: { include_usage: true },
  });
  let text = '', finish = null, usage = null, chunks = 0;
  for await (const ch of stream) {
    chunks++;
    if (ch.usage) usage = ch.usage;
    for (const x of ch.choices) { text += x.text; if (x.finish_reason) finish = x.finish_reason; }
  }
  out.completion_stream = { text, finish, usage, chunks };

  const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello there' }];
  const chat = await client.chat.completions.create({
    model: 'llama3', messages, max_completion_tokens: 12, temperature: 0.8, seed: 5, n: 2, logprobs: true, top_logprobs: 2,
    return_token_ids: true,
  });
  out.chat = chat.choices.map((x) => ({
    index: x.index, content: x.message.content, role: x.message.role, finish: x.finish_reason, token_ids: x.token_ids,
    logprobs: x.logprobs.content.map((l) => ({ token: l.token, logprob: l.logprob, top: l.top_logprobs.length })),
  }));
  out.chat_usage = chat.usage;

  const cs = await client.chat.completions.create({
    model: 'llama3', messages, max_tokens: 12, temperature: 0.8, seed: 5, n: 2, stream: true,
  });
  const parts = ['', ''], fins = [null, null];
  for await (const ch of cs) {
    for (const x of ch.choices) {
      if (x.delta.content) parts[x.index] += x.delta.content;
      if (x.finish_reason) fins[x.index] = x.finish_reason;
    }
  }
  out.chat_stream = parts.map((content, i) => ({ content, finish: fins[i] }));

  try {
    await client.completions.create({ model: 'gpt-4', prompt: 'x' });
    out.not_found = 'no error';
  } catch (e) { out.not_found = { status: e.status, param: e.param ?? (e.error && e.error.param), message: e.message }; }
  try {
    await client.chat.completions.create({ model: 'llama3', messages, top_p: 7 });
    out.bad_param = 'no error';
  } catch (e) { out.bad_param = { status: e.status, param: e.param ?? (e.error && e.error.param), message: e.message }; }
  try {
    await new OpenAI({ maxRetries: 0, apiKey: 'wrong' }).models.list();
    out.unauthorized = 'no error';
  } catch (e) { out.unauthorized = { status: e.status, message: e.message }; }

  if (process.env.SLUICE_JSON_SCHEMA) {
    const schema = JSON.parse(process.env.SLUICE_JSON_SCHEMA);
    const js = await client.chat.completions.create({
      model: 'llama3', messages, max_tokens: 200, temperature: 1, seed: 3, n: 3,
      response_format: { type: 'json_schema', json_schema: { name: 'answer', schema, strict: true } },
    });
    out.json_schema = js.choices.map((x) => ({ content: x.message.content, finish: x.finish_reason }));
    const jo = await client.chat.completions.create({
      model: 'llama3', messages, max_tokens: 200, temperature: 1, seed: 4, n: 3, response_format: { type: 'json_object' },
    });
    out.json_object = jo.choices.map((x) => ({ content: x.message.content, finish: x.finish_reason }));
  }
  process.stdout.write(JSON.stringify(out));
}

main().catch((e) => { console.error(e); process.exit(1); });
