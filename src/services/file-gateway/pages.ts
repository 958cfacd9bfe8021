// The web interface: a login page, the list of files published to the
// logged-in user, and generic message pages. Plain server-rendered HTML with
// one stylesheet and no script (the CSP allows none); every value is escaped.
// Nothing here names the server, the storage or anything inside.
import type { Publication } from './publications.ts';

export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

export const CSS = `*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2430;background:#f4f6f9}
header{display:flex;align-items:center;justify-content:space-between;padding:.8rem 1.5rem;background:#1d2430;color:#fff}
header h1{font-size:1.1rem;margin:0;font-weight:600}
header form{margin:0}
main{max-width:56rem;margin:2rem auto;padding:0 1rem}
.card{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.12);padding:1.5rem}
.login{max-width:22rem;margin:4rem auto}
label{display:block;margin:.8rem 0 .2rem;font-weight:600}
input[type=text],input[type=password]{width:100%;padding:.5rem;border:1px solid #b8c0cc;border-radius:4px;font:inherit}
button,.button{display:inline-block;padding:.45rem 1rem;border:0;border-radius:4px;background:#2563eb;color:#fff;font:inherit;text-decoration:none;cursor:pointer}
header button{background:#3b4658}
.login button{margin-top:1.2rem;width:100%}
.msg{padding:.6rem .8rem;border-radius:4px;background:#fdecec;color:#8a1c1c;margin-bottom:1rem}
table{width:100%;border-collapse:collapse}
th,td{text-align:left;padding:.6rem .5rem;border-bottom:1px solid #e3e7ee}
th{font-size:.85rem;color:#5b6675;font-weight:600}
td.num{text-align:right;white-space:nowrap}
.empty{color:#5b6675}
`;

function layout(title: string, body: string, header = ''): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${esc(title)}</title><link rel="stylesheet" href="/assets/app.css"></head>
<body><header><h1>Files</h1>${header}</header><main>${body}</main></body></html>
`;
}

export function loginPage(csrf: string, message?: string, user = ''): string {
  return layout('Sign in', `<div class="card login"><h2>Sign in</h2>
${message === undefined ? '' : `<p class="msg" role="alert">${esc(message)}</p>`}
<form method="post" action="/login" autocomplete="on">
<input type="hidden" name="csrf" value="${esc(csrf)}">
<label for="user">User name</label><input id="user" name="user" type="text" autocomplete="username" required maxlength="32" value="${esc(user)}" autofocus>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required maxlength="1024">
<button type="submit">Sign in</button>
</form></div>`);
}

export interface ListedFile {
  publication: Publication;
  size: number | undefined;
}

export function formatSize(n: number | undefined): string {
  if (n === undefined) return '—';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function formatExpiry(iso: string | null, now: number): string {
  if (iso === null) return 'never';
  const ms = Date.parse(iso) - now;
  const h = ms / 3_600_000;
  const rel = h >= 48 ? `in ${Math.floor(h / 24)} days` : h >= 1 ? `in ${Math.floor(h)} h` : `in ${Math.max(1, Math.ceil(ms / 60_000))} min`;
  return `${iso.slice(0, 16).replace('T', ' ')} UTC (${rel})`;
}

export function listPage(user: string, csrf: string, files: ListedFile[], now: number): string {
  const rows = files.map(({ publication: p, size }) => `<tr><td>${esc(p.name)}${p.once ? ' <small>(one download)</small>' : ''}</td>` +
    `<td class="num">${esc(formatSize(size))}</td><td>${esc(formatExpiry(p.expires, now))}</td>` +
    `<td><a class="button" href="/f/${p.id}/${encodeURIComponent(p.name)}" download>Download</a></td></tr>`).join('\n');
  const header = `<form method="post" action="/logout"><span>${esc(user)}</span> <input type="hidden" name="csrf" value="${esc(csrf)}"><button type="submit">Sign out</button></form>`;
  const body = files.length === 0
    ? '<div class="card"><p class="empty">No files are published to you.</p></div>'
    : `<div class="card"><table><thead><tr><th>File</th><th class="num">Size</th><th>Expires</th><th></th></tr></thead><tbody>
${rows}
</tbody></table></div>`;
  return layout('Files', body, header);
}

/** A generic page for errors: the status's usual words, nothing more. */
export function messagePage(title: string, text: string): string {
  return layout(title, `<div class="card"><h2>${esc(title)}</h2><p>${esc(text)}</p><p><a href="/">Back</a></p></div>`);
}
