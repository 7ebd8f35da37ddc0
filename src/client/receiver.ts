/**
 * The client's receive path. C2C messages (direct, broadcast, stored, room): the
 * session's receive choices, the `incoming` hook (the E2E layer), and acknowledgement
 * of stored messages (docs/PROTOCOL.md § ACK) — withheld on a connection once the hook
 * has failed, so the server delivers them again at the next login. Control messages:
 * CONFIG, NOTICE, ROOM events and the answers to requests.
 */
import type { EventEmitter } from "node:events";
import { C2C_HEADER_BYTES, STORED_HEADER_BYTES } from "../wire/constants.ts";
import {
  C2CType,
  ControlType,
  decodeJson,
  decodeMessage,
  Format,
  type Message,
} from "../wire/message.ts";
import { C2C_ROOM, C2C_ROOM_STORED } from "../wire/room.ts";
import type { StoredAcks } from "./acks.ts";
import { Incoming } from "./incoming.ts";
import type { Requests } from "./requests.ts";
import { roomControl } from "./rooms.ts";
import type { ClientSession } from "./session.ts";
import type { ClientEvents, ConnectOptions, IncomingMessage, Notice } from "./types.ts";

/** Where control messages go: answers to `requests`, a CONFIG's settings to `config`. */
export interface ControlSink {
  requests: Requests;
  config(json: Record<string, unknown>): void;
}

export class Receiver {
  readonly #events: EventEmitter<ClientEvents>;
  readonly #session: ClientSession;
  readonly #acks: StoredAcks;
  readonly #hook: ConnectOptions["incoming"];
  readonly #control: ControlSink;
  /** Set when the `incoming` hook failed: no more stored messages acknowledged on this connection. */
  #ackHeld = false;

  constructor(
    events: EventEmitter<ClientEvents>,
    session: ClientSession,
    acks: StoredAcks,
    hook: ConnectOptions["incoming"],
    control: ControlSink,
  ) {
    this.#control = control;
    this.#events = events;
    this.#session = session;
    this.#acks = acks;
    this.#hook = hook;
  }

  /** A new connection: acknowledgements start again. */
  reset(): void {
    this.#acks.reset();
    this.#ackHeld = false;
  }

  /** A message from the server; reserved or malformed ones are discarded. */
  message(plain: Uint8Array): void {
    const b0 = plain[0] as number;
    if (b0 >>> 4 === Format.C2C) {
      this.#c2c(plain, b0 & 0x0f);
      return;
    }
    let msg: Message;
    try {
      msg = decodeMessage(plain);
    } catch {
      return; // reserved or malformed: discarded
    }
    if (msg.format !== Format.CONTROL) return;
    switch (msg.type) {
      case ControlType.CONFIG: {
        let json: Record<string, unknown>;
        try {
          json = decodeJson(msg.body);
        } catch {
          return; // an unreadable CONFIG changes nothing
        }
        this.#control.config(json);
        return;
      }
      case ControlType.NOTICE:
        try {
          this.#events.emit("notice", decodeJson(msg.body) as unknown as Notice);
        } catch {
          // ignored
        }
        return;
      case ControlType.ROOM:
        roomControl(this.#events, this.#control.requests, msg.body);
        return;
      case ControlType.HEARTBEAT:
      case ControlType.SERVER_STATUS:
      case ControlType.CLIENT_STATUS:
      case ControlType.KEYS:
        this.#control.requests.answer(msg.type, msg.body);
        return;
    }
  }

  /** A C2C message (`type`: its low nibble). */
  #c2c(plain: Uint8Array, type: number): void {
    if (type === C2C_ROOM || type === C2C_ROOM_STORED) {
      this.#room(plain, type);
      return;
    }
    const header = type === C2CType.STORED ? STORED_HEADER_BYTES : C2C_HEADER_BYTES;
    if (type > C2CType.STORED || plain.length < header) return; // reserved or malformed
    if (!this.#session.wants(type === C2CType.STORED)) return; // not taken, not acknowledged
    const shown = this.#filter(new Incoming(plain, type));
    if (shown) this.#events.emit("message", shown);
    // After a failed hook, stored messages are no longer acknowledged on this connection.
    if (type === C2CType.STORED && !this.#ackHeld) this.#acks.received();
  }

  #room(plain: Uint8Array, type: number): void {
    const stored = type === C2C_ROOM_STORED;
    let m: Incoming;
    try {
      m = new Incoming(plain, type);
    } catch {
      return; // malformed: discarded
    }
    if (!this.#session.wants(stored)) return;
    // Through the E2E layer too (end-to-end encrypted rooms, docs/E2E.md § Rooms).
    const shown = this.#filter(m);
    if (shown) this.#events.emit("message", shown);
    // After a failed hook, no stored message of any kind is acknowledged on this connection.
    if (stored && !this.#ackHeld) this.#acks.received();
  }

  /**
   * Runs the `incoming` hook (the E2E layer) on a message: its result is delivered, or
   * nothing when null. When it throws (its state could not be saved, say), no more
   * stored messages are acknowledged on this connection and null is returned.
   */
  #filter(m: Incoming): IncomingMessage | null {
    if (!this.#hook) return m;
    try {
      return this.#hook(m);
    } catch (err) {
      this.#ackHeld = true;
      this.#events.emit("incomingError", { error: err as Error });
      return null;
    }
  }
}
