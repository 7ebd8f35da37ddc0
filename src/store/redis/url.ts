/** Redis URLs as the CLI and the logs use them. */

/** `url` with its password (and user) left out, for messages and logs. */
export function redactUrl(url: string): string {
  return url.replace(/^(rediss?:\/\/)[^@/]*@/i, "$1***@");
}

/** `redis://HOST:PORT[/DB]` → whether this names a Redis store. */
export function isRedisUrl(text: string): boolean {
  return /^rediss?:\/\//i.test(text);
}
