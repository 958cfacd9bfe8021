// Content-Type of a download, by the file name's extension. Unknown types
// are application/octet-stream; every download is also sent as an attachment
// with nosniff and a sandboxing CSP, so even HTML never runs in our origin.
const TYPES: Record<string, string> = {
  txt: 'text/plain; charset=utf-8', csv: 'text/csv; charset=utf-8', md: 'text/markdown; charset=utf-8',
  log: 'text/plain; charset=utf-8', json: 'application/json', xml: 'application/xml', html: 'text/html; charset=utf-8',
  htm: 'text/html; charset=utf-8', pdf: 'application/pdf', rtf: 'application/rtf',
  doc: 'application/msword', docx: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  xls: 'application/vnd.ms-excel', xlsx: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  ppt: 'application/vnd.ms-powerpoint', pptx: 'application/vnd.openxmlformats-officedocument.presentationml.presentation',
  odt: 'application/vnd.oasis.opendocument.text', ods: 'application/vnd.oasis.opendocument.spreadsheet',
  odp: 'application/vnd.oasis.opendocument.presentation',
  png: 'image/png', jpg: 'image/jpeg', jpeg: 'image/jpeg', gif: 'image/gif', webp: 'image/webp', svg: 'image/svg+xml',
  mp3: 'audio/mpeg', ogg: 'audio/ogg', wav: 'audio/wav', mp4: 'video/mp4', webm: 'video/webm', mkv: 'video/x-matroska',
  zip: 'application/zip', gz: 'application/gzip', tgz: 'application/gzip', tar: 'application/x-tar',
  xz: 'application/x-xz', zst: 'application/zstd', '7z': 'application/x-7z-compressed', iso: 'application/x-iso9660-image',
  bin: 'application/octet-stream', img: 'application/octet-stream',
};

export function contentType(name: string): string {
  const i = name.lastIndexOf('.');
  if (i <= 0 || i === name.length - 1) return 'application/octet-stream';
  return TYPES[name.slice(i + 1).toLowerCase()] ?? 'application/octet-stream';
}

/** Content-Disposition: attachment with an ASCII fallback name and the exact UTF-8 name (RFC 6266 / 8187). */
export function contentDisposition(name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]/g, '_').replace(/["\\]/g, '_').replace(/[;%]/g, '_');
  const star = encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${ascii}"; filename*=UTF-8''${star}`;
}
