/** The two directions of an authenticated connection, as left by the handshake. */
import type { Opener, Sealer } from "../crypto/channel.ts";

export interface SessionKeys {
  /** Seals what this side sends (client: c2s, server: s2c). */
  sealer: Sealer;
  /** Opens what this side receives (client: s2c, server: c2s). */
  opener: Opener;
}
