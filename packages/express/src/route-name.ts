/** A path as Express takes it: a string, a regular expression, or a (nested) array of them. */
export type RoutePath = string | RegExp | readonly RoutePath[];

function withoutQuery(path: string): string {
  const query = path.indexOf('?');
  return query === -1 ? path : path.slice(0, query);
}

/** `/chat/` and `/chat` are one route name (as in Express's default, non-strict routing). */
function trimTrailingSlashes(path: string): string {
  let end = path.length;
  while (end > 0 && path.charCodeAt(end - 1) === 0x2f) end--;
  return path.slice(0, end);
}

/** A route name given as a string: without its query string and trailing slashes (`/` stays). */
export function normalizeRoutePath(path: string): string {
  return trimTrailingSlashes(withoutQuery(path)) || '/';
}

/** The paths of a route declaration, arrays flattened. */
export function flattenPaths(path: RoutePath): Array<string | RegExp> {
  return Array.isArray(path) ? path.flat(Number.POSITIVE_INFINITY) : [path as string | RegExp];
}

/**
 * The name a connection is filed under for one path of its route: the mount path as matched
 * (`req.baseUrl`) followed by the declared path. A regular expression goes in as its `String()`
 * form, untrimmed, since its last character is the closing `/` of the literal (or a flag).
 */
export function routeName(baseUrl: string, path: string | RegExp): string {
  return typeof path === 'string' ? normalizeRoutePath(`${baseUrl}${path}`) : `${baseUrl}${path}`;
}
