// Every request the console makes to the Quiver HTTP API goes through `api()`: it owns
// the API key (asked for when the server answers 401, sent as a bearer token, kept only
// in this tab's sessionStorage) and turns error answers into ApiError carrying the
// server's own code and message.

const KEY = 'quiver.apiKey';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function hasKey() {
  return Boolean(sessionStorage.getItem(KEY));
}

export function forgetKey() {
  sessionStorage.removeItem(KEY);
  window.dispatchEvent(new Event('quiver-key'));
}

// One prompt at a time: requests that meet a 401 together all wait for the same answer.
let prompting = null;

function askForKey(message) {
  if (!prompting) {
    prompting = new Promise((resolve) => {
      const dialog = document.getElementById('key-dialog');
      const form = document.getElementById('key-form');
      const input = document.getElementById('key-input');
      const error = document.getElementById('key-error');
      const cancel = document.getElementById('key-cancel');
      error.textContent = message;
      error.hidden = !message;
      const done = (ok) => {
        form.removeEventListener('submit', onSubmit);
        dialog.removeEventListener('cancel', onCancel);
        cancel.removeEventListener('click', onCancel);
        // The key lives in sessionStorage only; the field is emptied at once.
        input.value = '';
        if (dialog.open) dialog.close();
        resolve(ok);
      };
      const onSubmit = (e) => {
        e.preventDefault();
        const key = input.value.trim();
        if (!key) return;
        sessionStorage.setItem(KEY, key);
        window.dispatchEvent(new Event('quiver-key'));
        done(true);
      };
      const onCancel = (e) => {
        e.preventDefault();
        done(false);
      };
      form.addEventListener('submit', onSubmit);
      dialog.addEventListener('cancel', onCancel);
      cancel.addEventListener('click', onCancel);
      dialog.showModal();
      input.focus();
    }).finally(() => {
      prompting = null;
    });
  }
  return prompting;
}

async function errorOf(resp) {
  const text = await resp.text().catch(() => '');
  try {
    const body = JSON.parse(text);
    if (body && body.error && typeof body.error.message === 'string') {
      return new ApiError(resp.status, body.error.code || String(resp.status), body.error.message);
    }
  } catch {
    // Not the API's error shape (a proxy's page, say): fall through to the status line.
  }
  const detail = text.trim().slice(0, 200);
  return new ApiError(resp.status, String(resp.status),
    `${resp.status} ${resp.statusText}${detail ? `: ${detail}` : ''}`);
}

/**
 * `api('POST', '/collections/x/query', body)` -> parsed JSON. `opts.as`: 'json'
 * (default), 'text' or 'blob'. Throws ApiError; a 401 first asks for a key and retries.
 */
export async function api(method, path, body, opts = {}) {
  for (;;) {
    const key = sessionStorage.getItem(KEY);
    const headers = { Accept: 'application/json' };
    if (key) headers.Authorization = `Bearer ${key}`;
    const init = { method, headers };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = typeof body === 'string' ? body : JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, 'unreachable', `cannot reach the server: ${e.message}`);
    }
    if (resp.status === 401) {
      const err = await errorOf(resp);
      const now = sessionStorage.getItem(KEY);
      // Another request got a new key meanwhile: retry with it before asking again.
      if (now && now !== key) continue;
      if (now) sessionStorage.removeItem(KEY);
      if (await askForKey(err.message)) continue;
      throw err;
    }
    if (!resp.ok) throw await errorOf(resp);
    const as = opts.as || 'json';
    if (as === 'blob') return resp.blob();
    if (as === 'text') return resp.text();
    const text = await resp.text();
    return text ? JSON.parse(text) : null;
  }
}
