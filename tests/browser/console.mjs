// Drives the DPO console in Debian's chromium, for tests/browser.rs (which starts
// `hallpass serve`, sends the messages and checks what the sink got afterwards).
//
// Input, from the environment:
//   HALLPASS_URL       the console, e.g. http://127.0.0.1:41234
//   HALLPASS_SPEC      JSON: { dpo: {user, password}, admin: {user, password},
//                              values: [generated identifiers that must never show],
//                              held: { reject: ID, release: ID, bulk: ID, cc: ID },
//                              senders: { reject: ADDRESS }, reason: TEXT }
//   HALLPASS_OUT       where screenshots and page-weight.txt go
//   HALLPASS_CHROMIUM  the browser (default /usr/bin/chromium)
//
// Exits 0 when every check passed; otherwise prints what failed and exits 1.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const url = need('HALLPASS_URL').replace(/\/$/, '');
const spec = JSON.parse(need('HALLPASS_SPEC'));
const out = need('HALLPASS_OUT');
const executablePath = process.env.HALLPASS_CHROMIUM || '/usr/bin/chromium';
mkdirSync(out, { recursive: true });

const SIZES = [
  { name: 'laptop', width: 1366, height: 768 },
  { name: 'tablet', width: 820, height: 1180 },
];

function need(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`console.mjs: ${name} is not set (run it through tests/browser.rs)`);
    process.exit(2);
  }
  return v;
}

function check(ok, what) {
  if (!ok) throw new Error(`check failed: ${what}`);
}

const browser = await chromium.launch({
  executablePath,
  // The flags are given in full here, so playwright adds no headless mode of its own.
  headless: false,
  args: [
    '--headless=new',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-dev-shm-usage',
    '--disable-background-networking',
    '--no-first-run',
    '--disable-component-update',
    '--disable-sync',
  ],
});

const weights = [];
let failed = null;
try {
  await run();
} catch (e) {
  failed = e;
} finally {
  await browser.close();
}
writeFileSync(join(out, 'page-weight.txt'), weightReport());
if (failed) {
  console.error(`console.mjs: ${failed.stack || failed}`);
  process.exit(1);
}
console.log('console.mjs: all checks passed');

async function run() {
  const dpo = await session(spec.dpo);
  const page = dpo.page;

  // The list, then filtered by rule and by sender.
  await visit(dpo, 'list', () => page.goto(`${url}/held`));
  const all = await rows(page);
  check(all.length === 4, `four held messages listed, got ${all.length}`);
  for (const id of Object.values(spec.held)) {
    check(all.includes(id), `held message ${id} is in the list`);
  }

  await page.selectOption('select[name="rule"]', 'bulk_send');
  await visit(dpo, 'filtered-rule', () => page.click('form.filters button[type="submit"]'));
  check(new URL(page.url()).searchParams.get('rule') === 'bulk_send', `the rule is in the URL: ${page.url()}`);
  let got = await rows(page);
  check(same(got, [spec.held.bulk]), `rule bulk_send lists only the bulk message, got ${got}`);

  await page.selectOption('select[name="rule"]', 'cc_exposure');
  await visit(dpo, null, () => page.click('form.filters button[type="submit"]'));
  got = await rows(page);
  check(same(got, [spec.held.cc]), `rule cc_exposure lists only the cc message, got ${got}`);

  await page.selectOption('select[name="rule"]', 'personal_data_external');
  await visit(dpo, null, () => page.click('form.filters button[type="submit"]'));
  got = await rows(page);
  check(same(got, [spec.held.reject, spec.held.release]),
    `rule personal_data_external lists the two with pupil data, got ${got}`);

  await page.selectOption('select[name="rule"]', '');
  await page.fill('input[name="sender"]', spec.senders.reject);
  await visit(dpo, 'filtered-sender', () => page.click('form.filters button[type="submit"]'));
  got = await rows(page);
  check(same(got, [spec.held.reject]), `sender ${spec.senders.reject} lists only their message, got ${got}`);
  const cells = await page.locator('table.held tbody tr td').allTextContents();
  check(cells.some((c) => c.includes(spec.senders.reject)), 'the sender is shown in the row');

  // One message: open it from the list, release it.
  await visit(dpo, null, () => page.goto(`${url}/held`));
  await visit(dpo, 'message', () => page.click(`table.held a[href$="/held/${spec.held.release}"]`));
  check(page.url().endsWith(`/held/${spec.held.release}`), `the message page opened: ${page.url()}`);
  await visit(dpo, null, () => page.getByRole('button', { name: 'Release', exact: true }).click());
  check(await page.locator('.status-released').count() > 0, 'the released message shows as released');

  // Another: reject it with a reason.
  await visit(dpo, null, () => page.goto(`${url}/held/${spec.held.reject}`));
  await page.fill('textarea[name="reason"]', spec.reason);
  await visit(dpo, null, () => page.getByRole('button', { name: 'Reject', exact: true }).click());
  check(await page.locator('.status-rejected').count() > 0, 'the rejected message shows as rejected');
  check((await page.content()).includes(spec.reason), 'the reason is shown on the rejected message');

  // The audit trail has both decisions, by the dpo, on the right messages.
  await visit(dpo, 'audit', () => page.goto(`${url}/audit`));
  const audit = await page.locator('table.audit tbody tr').evaluateAll((trs) =>
    trs.map((tr) => Array.from(tr.querySelectorAll('td')).map((td) => td.textContent.trim())));
  const has = (action, id) =>
    audit.some((r) => r[4] === action && r[5] === id && r[2] === spec.dpo.user);
  check(has('release', spec.held.release), `the audit trail shows the release of ${spec.held.release}`);
  check(has('reject', spec.held.reject), `the audit trail shows the rejection of ${spec.held.reject}`);

  await visit(dpo, 'dashboard', () => page.goto(`${url}/dashboard`));
  check(await page.locator('svg[role="img"]').count() === 1, 'the dashboard draws its chart');

  // Users is for admins.
  const admin = await session(spec.admin);
  await visit(admin, 'users', () => admin.page.goto(`${url}/users`));
  const names = await admin.page.locator('table.users tbody tr td:first-child').allTextContents();
  check(names.some((n) => n.startsWith(spec.dpo.user)), 'the users page lists the dpo');
  await admin.context.close();
  await dpo.context.close();
}

// A fresh browser context with the HTTP cache off (so each load's weight is the whole page),
// logged in as `who`; the login page is screenshotted on the way.
async function session(who) {
  const context = await browser.newContext({ viewport: SIZES[0] });
  const page = await context.newPage();
  // Routing every request through playwright turns the HTTP cache off.
  await context.route('**/*', (route) => route.continue());
  const s = { context, page, who: who.user };
  await visit(s, weights.some((w) => w.name === 'login') ? null : 'login', () => page.goto(`${url}/login`));
  await page.fill('#username', who.user);
  await page.fill('#password', who.password);
  await visit(s, null, () => page.getByRole('button', { name: 'Log in' }).click());
  check(!new URL(page.url()).pathname.startsWith('/login'), `${who.user} is logged in (at ${page.url()})`);
  return s;
}

// Runs `action` (a navigation or a click that loads a page), waits for the load to settle,
// records what came over the wire, checks the page source for generated values, and, when
// `shot` names the page, screenshots it at each size and records its weight.
async function visit(s, shot, action) {
  const { page } = s;
  const requests = [];
  const seen = (r) => requests.push(r);
  page.on('requestfinished', seen);
  await Promise.all([page.waitForEvent('load'), action()]);
  await page.waitForLoadState('networkidle');
  page.off('requestfinished', seen);

  const html = await page.content();
  for (const v of spec.values) {
    check(!html.includes(v), `a generated identifier appears in the source of ${page.url()}`);
  }
  const title = await page.title();
  check(!/^\d{3} /.test(title), `${page.url()} is not an error page ("${title}")`);

  if (!shot) return;
  let html_bytes = 0, css_bytes = 0, other_bytes = 0, headers = 0;
  for (const r of requests) {
    const sizes = await r.sizes();
    const type = r.resourceType();
    // -1 means unknown (a cached response): count it as nothing over the wire.
    const body = Math.max(0, sizes.responseBodySize);
    headers += Math.max(0, sizes.responseHeadersSize);
    if (type === 'document') html_bytes += body;
    else if (type === 'stylesheet') css_bytes += body;
    else other_bytes += body;
  }
  weights.push({ name: shot, path: new URL(page.url()).pathname, responses: requests.length, html_bytes, css_bytes, other_bytes, headers });

  for (const size of SIZES) {
    await page.setViewportSize({ width: size.width, height: size.height });
    await page.screenshot({ path: join(out, `${shot}-${size.name}.png`), fullPage: true });
  }
  await page.setViewportSize({ width: SIZES[0].width, height: SIZES[0].height });
}

// The ids the held table links to, in order.
async function rows(page) {
  const hrefs = await page.locator('table.held tbody tr td:first-child a').evaluateAll((as) =>
    as.map((a) => a.getAttribute('href')));
  return hrefs.map((h) => h.split('/').pop());
}

function same(a, b) {
  return a.length === b.length && [...a].sort().every((x, i) => x === [...b].sort()[i]);
}

function weightReport() {
  const kb = (n) => `${(n / 1024).toFixed(1)} KiB`.padStart(10);
  const lines = [
    'Bytes over the wire per page load, cache off (bodies as sent; headers counted apart).',
    `${'page'.padEnd(16)}${'path'.padEnd(36)}${'responses'.padStart(9)}${'HTML'.padStart(10)}${'CSS'.padStart(10)}${'other'.padStart(10)}${'headers'.padStart(10)}${'total'.padStart(10)}`,
  ];
  for (const w of weights) {
    const path = w.path.length > 34 ? `${w.path.slice(0, 33)}…` : w.path;
    lines.push(`${w.name.padEnd(16)}${path.padEnd(36)}${String(w.responses).padStart(9)}${kb(w.html_bytes)}${kb(w.css_bytes)}${kb(w.other_bytes)}${kb(w.headers)}${kb(w.html_bytes + w.css_bytes + w.other_bytes + w.headers)}`);
  }
  return lines.join('\n') + '\n';
}
