// Completes the user's step of an RFC 8628 device flow on provider.mjs, as a person's browser
// would: open the verification page, confirm the code, sign in on the devInteractions login page,
// then grant (or refuse) consent.
//
//   node approve.mjs USER_CODE USERNAME [deny]
//
// The provider's URL comes from OIDC_ISSUER (default http://127.0.0.1:$OIDC_PORT). With `deny`
// the user signs in and then aborts at the consent prompt (the provider's interaction abort
// endpoint), so the device's token polling gets `access_denied`.
// Exits 0 when the provider shows its end page (success, or "interrupted" for deny); otherwise
// prints what went wrong and the last page on stderr and exits 1.

const [userCode, username, mode] = process.argv.slice(2);
if (!userCode || !username || (mode !== undefined && mode !== 'deny')) {
  console.error('usage: node approve.mjs USER_CODE USERNAME [deny]');
  process.exit(2);
}
const deny = mode === 'deny';
const issuer = process.env.OIDC_ISSUER
  ?? (process.env.OIDC_PORT ? `http://127.0.0.1:${process.env.OIDC_PORT}` : undefined);
if (!issuer) {
  console.error('set OIDC_ISSUER (or OIDC_PORT) to the provider\'s URL');
  process.exit(2);
}

// A tiny cookie jar: one host, so name and path are all that matter.
const jar = new Map(); // name -> { value, path }
function storeCookies(response, url) {
  for (const line of response.headers.getSetCookie()) {
    const [pair, ...attrs] = line.split(';').map((s) => s.trim());
    const eq = pair.indexOf('=');
    if (eq <= 0) continue;
    const name = pair.slice(0, eq);
    const value = pair.slice(eq + 1);
    let path = new URL(url).pathname.replace(/\/[^/]*$/, '') || '/';
    let expired = value === '';
    for (const attr of attrs) {
      const [k, v = ''] = attr.split('=');
      const key = k.toLowerCase();
      if (key === 'path') path = v || '/';
      if (key === 'max-age' && Number(v) <= 0) expired = true;
      if (key === 'expires' && Date.parse(v) <= Date.now()) expired = true;
    }
    const key = `${name}\u0000${path}`;
    if (expired) jar.delete(key);
    else jar.set(key, { name, value, path });
  }
}
function cookieHeader(url) {
  const path = new URL(url).pathname;
  return [...jar.values()]
    .filter((c) => path === c.path || path.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`))
    .sort((a, b) => b.path.length - a.path.length)
    .map((c) => `${c.name}=${c.value}`)
    .join('; ');
}

let lastPage = '';
function fail(message) {
  console.error(`approve.mjs: ${message}`);
  if (lastPage) console.error(`--- last page ---\n${lastPage.slice(0, 4000)}`);
  process.exit(1);
}

// One request, then its redirects, as a browser does (303/302 after a POST become GETs).
async function browse(url, form) {
  let method = form ? 'POST' : 'GET';
  let body = form ? new URLSearchParams(form).toString() : undefined;
  for (let hops = 0; hops < 20; hops += 1) {
    const headers = { 'user-agent': 'sluice-tests approve.mjs', accept: 'text/html' };
    const cookie = cookieHeader(url);
    if (cookie) headers.cookie = cookie;
    if (body !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
    const response = await fetch(url, { method, headers, body, redirect: 'manual' });
    storeCookies(response, url);
    if (response.status >= 300 && response.status < 400 && response.headers.get('location')) {
      url = new URL(response.headers.get('location'), url).href;
      if (response.status !== 307 && response.status !== 308) {
        method = 'GET';
        body = undefined;
      }
      continue;
    }
    const text = await response.text();
    lastPage = text;
    return { url, status: response.status, text };
  }
  return fail(`too many redirects from ${url}`);
}

const unescape = (s) => s
  .replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>')
  .replace(/&amp;/g, '&');

function attribute(tag, name) {
  const m = tag.match(new RegExp(`\\b${name}\\s*=\\s*"([^"]*)"`, 'i'));
  return m ? unescape(m[1]) : undefined;
}

// Every <form> on the page: its id, action, method and hidden inputs.
function forms(page) {
  const found = [];
  const re = /<form\b([^>]*)>([\s\S]*?)<\/form>/gi;
  for (let m = re.exec(page.text); m; m = re.exec(page.text)) {
    const fields = {};
    for (const input of m[2].match(/<input\b[^>]*>/gi) ?? []) {
      const name = attribute(input, 'name');
      if (name && (attribute(input, 'type') ?? 'text').toLowerCase() === 'hidden') {
        fields[name] = attribute(input, 'value') ?? '';
      }
    }
    found.push({
      id: attribute(m[1], 'id'),
      action: new URL(attribute(m[1], 'action') ?? page.url, page.url).href,
      method: (attribute(m[1], 'method') ?? 'get').toLowerCase(),
      fields,
    });
  }
  return found;
}

function title(page) {
  const m = page.text.match(/<title>([\s\S]*?)<\/title>/i);
  return m ? m[1].trim() : '';
}

async function main() {
  const start = new URL('/device', issuer);
  start.searchParams.set('user_code', userCode);
  let page = await browse(start.href);
  let consented = false;
  let loggedIn = false;

  for (let step = 0; step < 12; step += 1) {
    const t = title(page);
    if (t === 'Sign-in Success') {
      if (deny) fail('the flow succeeded although it was meant to be denied');
      if (!loggedIn || !consented) fail('reached the success page without signing in and consenting');
      return;
    }
    const all = forms(page);
    const form = (pred) => all.find(pred);

    if (/The Sign-in request was interrupted/.test(page.text)) {
      fail('the provider says the sign-in request was interrupted');
    }
    if (/The code you entered is incorrect/.test(page.text)) {
      fail(`the provider does not know the user code ${userCode} (or it expired or was used)`);
    }
    if (/There was an error processing your request/.test(page.text) || /oops! something went wrong/.test(page.text)) {
      fail(`the provider reported an error (HTTP ${page.status})${loggedIn
        ? `; is "${username}" one of its users (alice, bob, mallory)?` : ''}`);
    }

    // The auto-submitting page (form_post) carrying xsrf + user_code, then the confirm form.
    const confirm = form((f) => f.id === 'op.deviceConfirmForm');
    if (confirm) {
      page = await browse(confirm.action, confirm.fields);
      continue;
    }
    const post = form((f) => f.method === 'post' && 'xsrf' in f.fields && 'user_code' in f.fields);
    if (post) {
      page = await browse(post.action, post.fields);
      continue;
    }

    const login = form((f) => f.fields.prompt === 'login');
    if (login) {
      if (loggedIn) fail(`the provider asked for the login again: is "${username}" one of its users?`);
      loggedIn = true;
      page = await browse(login.action, { ...login.fields, login: username, password: 'any password' });
      continue;
    }

    const consent = form((f) => f.fields.prompt === 'consent');
    if (consent) {
      if (deny) {
        const abort = page.text.match(/<a\b[^>]*href="([^"]*\/abort)"/i);
        const abortUrl = abort ? new URL(unescape(abort[1]), page.url).href : `${page.url.replace(/\/$/, '')}/abort`;
        page = await browse(abortUrl);
        // Only this path may end on the "interrupted" page.
        if (/The Sign-in request was interrupted/.test(page.text)) return;
        fail('aborting the consent did not end the flow');
      }
      consented = true;
      page = await browse(consent.action, consent.fields);
      continue;
    }

    fail(`unexpected page "${t}" (HTTP ${page.status}) at ${page.url}`);
  }
  fail('the flow did not end');
}

main().catch((err) => fail(err?.stack ?? String(err)));
