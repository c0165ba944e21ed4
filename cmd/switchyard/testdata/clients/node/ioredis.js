// ioredis (npm, pinned in package.json) through Switchyard: a plain
// connection and sentinels: through the Sentinel facade, in plain text
// and over TLS.
const fs = require('fs');
const Redis = require('ioredis');
const readline = require('readline');

const host = process.env.REDIS_HOST;
const port = Number(process.env.REDIS_PORT);
const [shost, sport] = process.env.REDIS_SENTINEL_HOSTS.split(',')[0].split(':');
const name = process.env.REDIS_SENTINEL_MASTER;
const prefix = process.env.MATRIX_PREFIX;
const errors = {};

function check(cond, msg) {
  if (!cond) throw new Error(msg);
}

// retry re-runs fn on connection errors for up to 30 s; ioredis itself
// reconnects and queues commands while it does.
async function retry(mode, fn) {
  const deadline = Date.now() + 30000;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      const transient = /ECONNRESET|ECONNREFUSED|EPIPE|Connection is closed|TRYAGAIN|timed? ?out/i.test(String(e));
      if (!transient || Date.now() > deadline) throw e;
      errors[mode] = (errors[mode] || 0) + 1;
      process.stderr.write(`retry ${mode}: ${e}\n`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

async function flow(mode, redis) {
  const k = `${prefix}:${mode}`;
  check((await retry(mode, () => redis.ping())) === 'PONG', 'PING');
  await retry(mode, () => redis.set(`${k}:test-key`, 'test-value'));
  check((await retry(mode, () => redis.get(`${k}:test-key`))) === 'test-value', 'GET test-key');
  await retry(mode, () => redis.setex(`${k}:cache:result`, 3600, 'data'));
  const ttl = await retry(mode, () => redis.ttl(`${k}:cache:result`));
  check(ttl > 0 && ttl <= 3600, `TTL ${ttl}`);
  await retry(mode, () => redis.set(`${k}:user:123`, 'user-data'));
  check((await retry(mode, () => redis.get(`${k}:user:123`))) === 'user-data', 'GET user:123');
  console.log(`ok ${mode}`);
}

async function after(mode, redis) {
  const start = Date.now();
  const key = `${prefix}:${mode}:after`;
  await retry(mode, () => redis.set(key, 'after'));
  const v = await retry(mode, () => redis.get(key));
  check(v === 'after', `GET ${key} gave ${v}`);
  console.log(`phase2 ${mode} key=${key} errors=${errors[mode] || 0} ms=${Date.now() - start}`);
}

function nextLine() {
  return new Promise((resolve) => {
    const rl = readline.createInterface({ input: process.stdin });
    rl.once('line', (l) => {
      rl.close();
      resolve(l);
    });
  });
}

async function main() {
  const standard = new Redis({ host, port });
  const sentinel = new Redis({
    sentinels: [{ host: shost, port: Number(sport) }],
    name,
    role: 'master',
  });
  sentinel.on('error', (err) => process.stderr.write(`sentinel client error: ${err}\n`));
  standard.on('error', (err) => process.stderr.write(`standard client error: ${err}\n`));
  await flow('standard', standard);
  await flow('sentinel', sentinel);
  // Over TLS: sentinelTLS to the facade's TLS listener, and with
  // enableTLSForSentinelMode, tls to the master it names (the TLS port).
  let tlsSentinel = null;
  if (process.env.MATRIX_TLS_SENTINEL) {
    const [thost, tport] = process.env.MATRIX_TLS_SENTINEL.split(':');
    const ca = fs.readFileSync(process.env.MATRIX_TLS_CA);
    tlsSentinel = new Redis({
      sentinels: [{ host: thost, port: Number(tport) }],
      name,
      role: 'master',
      sentinelTLS: { ca },
      tls: { ca },
      enableTLSForSentinelMode: true,
    });
    tlsSentinel.on('error', (err) => process.stderr.write(`sentinel-tls client error: ${err}\n`));
    await flow('sentinel-tls', tlsSentinel);
    const want = `${host}:${process.env.MATRIX_TLS_PORT}`;
    const got = `${tlsSentinel.stream.remoteAddress}:${tlsSentinel.stream.remotePort}`;
    check(got === want, `sentinel-tls connected to ${got}, want the TLS port ${want}`);
  }
  console.log('READY');
  await nextLine();
  await after('sentinel', sentinel);
  if (tlsSentinel) await after('sentinel-tls', tlsSentinel);
  await after('standard', standard);
  standard.disconnect();
  sentinel.disconnect();
  if (tlsSentinel) tlsSentinel.disconnect();
  console.log('DONE');
  // stdin stays referenced after readline; nothing else is pending.
  process.exit(0);
}

main().catch((e) => {
  process.stderr.write(`FAIL: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
