/** What both kinds of chat (terminal, pipes) say about a NOTICE from the server. */
import type { Notice } from "../../client/types.ts";

/**
 * One line about a message the server could not deliver live. `name` is the
 * recipient's; the result still holds the server's words: escape it before printing.
 */
export function describeNotice(n: Notice, name: string): string {
  switch (n.status) {
    case "queued":
      return `${name} is offline: your message is stored and will be delivered when they log in`;
    case "unknown":
      return `${name} does not exist (any more): message not delivered`;
    default:
      return `message to ${name} not delivered (${n.status}): ${n.reason}`;
  }
}
