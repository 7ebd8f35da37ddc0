/**
 * backbone — secure client-to-client messaging (backbone/1).
 *
 * The library behind the `backbone` binary: a server (`BackboneServer`), a client
 * (`connect`), the embedded store, and the protocol's building blocks.
 *
 * @example
 * import { connect } from "backbone";
 * await using me = await connect({ identity: "alice.identity" });
 * me.send(await me.resolve("bob"), "hello");
 */
export { formatHostPort, parseHostPort } from "./client/address.ts";
export { Client, connect } from "./client/client.ts";
export {
  formatIdentity,
  type Identity,
  type IdentityOptions,
  loadIdentity,
  parseIdentity,
} from "./client/identity.ts";
export {
  type RoomClient,
  RoomError,
  type RoomEvent,
  type RoomMember,
  type RoomSummary,
  Rooms,
} from "./client/rooms.ts";
export type {
  ClientEvents,
  ClientStatusEntry,
  ConnectOptions,
  IncomingMessage,
  Notice,
  ServerStatus,
} from "./client/types.ts";
export {
  type PassphraseSource,
  parsePrivateKey,
  parsePublicKey,
} from "./crypto/keyformats.ts";
export { fromPem, toPem } from "./crypto/pem.ts";
export { fingerprint } from "./crypto/primitives.ts";
export { generateRsaKeyPair, RsaPrivateKey, RsaPublicKey } from "./crypto/rsa.ts";
export { connectE2E } from "./e2e/connect.ts";
export { E2EError } from "./e2e/errors.ts";
export { formatSafetyNumber, identityFingerprint, safetyNumber } from "./e2e/fingerprint.ts";
export {
  E2EManager,
  type E2EOptions,
  type PeerInfo,
  type SendResult,
} from "./e2e/session-manager.ts";
export {
  BackboneError,
  ConnectionError,
  HandshakeError,
  KeyError,
  PinningError,
  StoreError,
  UsageError,
  WireError,
} from "./errors.ts";
export { BROADCAST, checkName, isUuid, newClientId } from "./ids.ts";
export { type Logger, StructuredLogger, silentLogger } from "./log.ts";
export { checkRoomName, isRoomAddress } from "./rooms/names.ts";
export {
  dataPaths,
  defaultDataDir,
  loadOrCreateServerKey,
  loadServerKey,
  openStore,
} from "./server/datadir.ts";
export { type Enrolled, type EnrollOptions, enrollClient } from "./server/enroll.ts";
export { BackboneServer, type ServerOptions } from "./server/server.ts";
export { DEFAULT_SERVER_SETTINGS, type ServerSettings } from "./server/settings.ts";
export { SqliteStore } from "./store/sqlite.ts";
export type { ClientRecord, NodeLease, RoomMembership, RoomRecord, Store } from "./store/store.ts";
export { VERSION } from "./version.ts";
export {
  decodeSessionBody,
  encodeSessionBody,
  type Receive,
  SESSION_VERSION,
} from "./wire/session.ts";
export type { ConnectionSettings } from "./wire/settings.ts";
