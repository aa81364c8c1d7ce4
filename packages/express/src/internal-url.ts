/**
 * The path segment appended to an upgrade request's URL while it is routed through Express.
 * `app.ws('/chat')` registers a GET route on `/chat/.websocket`, so an upgrade is never
 * answered by a plain `app.get('/chat')` page or by `express.static`, and a plain GET never
 * reaches a WebSocket route. It is the same marker express-ws uses.
 */
export const WEBSOCKET_SUFFIX = '/.websocket';

function splitUrl(url: string): [pathname: string, search: string] {
  const query = url.indexOf('?');
  return query === -1 ? [url, ''] : [url.slice(0, query), url.slice(query)];
}

/** `/chat/` and `/chat` are one WebSocket route (Express's non-strict routing). */
function trimTrailingSlashes(pathname: string): string {
  let end = pathname.length;
  while (end > 0 && pathname.charCodeAt(end - 1) === 0x2f) end--;
  return pathname.slice(0, end);
}

/** The route path `app.ws(path)` registers. */
export function internalRoutePath(path: string): string {
  return `${trimTrailingSlashes(path)}${WEBSOCKET_SUFFIX}`;
}

/** The URL an upgrade request is routed with: the marker goes before the query string. */
export function toInternalUrl(url: string): string {
  const [pathname, search] = splitUrl(url);
  return `${trimTrailingSlashes(pathname)}${WEBSOCKET_SUFFIX}${search}`;
}

/** The trailing slashes `toInternalUrl` takes off `url`, to be put back by `fromInternalUrl`. */
export function trailingSlashes(url: string): string {
  const [pathname] = splitUrl(url);
  return pathname.slice(trimTrailingSlashes(pathname).length);
}

/**
 * The URL without the marker (and with the trailing slashes the client sent): what the
 * WebSocket route's own middleware and handler see.
 */
export function fromInternalUrl(url: string, slashes = ''): string {
  const [pathname, search] = splitUrl(url);
  if (!pathname.endsWith(WEBSOCKET_SUFFIX)) return url;
  const base = pathname.slice(0, -WEBSOCKET_SUFFIX.length);
  return `${base === '' && slashes === '' ? '/' : `${base}${slashes}`}${search}`;
}

/** A route key: a path without its query string and trailing slashes (`/` stays `/`). */
export function normalizeRoutePath(path: string): string {
  return trimTrailingSlashes(splitUrl(path)[0]) || '/';
}
