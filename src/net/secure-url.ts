/** Whether `url` is plain http to this machine (a local fake or development provider). */
export function isLoopbackHttp(url: URL): boolean {
  return url.protocol === 'http:' && (url.hostname === 'localhost' || url.hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(url.hostname));
}

/** `value` as a URL that is https, or http to loopback only: keys and tokens never travel in the clear. */
export function secureUrl(value: string, what: string): URL {
  const url = new URL(value);
  if (url.protocol !== 'https:' && !isLoopbackHttp(url)) throw new Error(`${what} must be an https URL (http only on loopback), got ${value}`);
  return url;
}
