/**
 * Message data and handshake layouts (docs/PROTOCOL.md § Messages, § Handshake):
 * round trips with random contents, every truncation, reserved formats and types.
 */
import { describe, expect, test } from "bun:test";
import { WireError } from "../src/errors.ts";
import {
  C2C_HEADER_BYTES,
  CONTROL_HEADER_BYTES,
  ID_BYTES,
  MAX_C2C_DATA,
  MAX_MESSAGE_DATA,
  STORED_HEADER_BYTES,
} from "../src/wire/constants.ts";
import {
  C2CType,
  ControlType,
  decodeAckBody,
  decodeJson,
  decodeMessage,
  decodeText,
  encodeAckBody,
  encodeC2C,
  encodeControl,
  encodeS2S,
  encodeStored,
  Format,
} from "../src/wire/message.ts";
import { cat, u32 } from "./helpers/bytes.ts";
import { expectError, thrown } from "./helpers/errors.ts";
import { Prng } from "./helpers/prng.ts";

const CONTROL_TYPES = Object.values(ControlType);

/** Every prefix shorter than `header` is an error; longer ones decode (shorter data is valid). */
function checkTruncations(encoded: Uint8Array, header: number): void {
  for (let n = 0; n < encoded.length; n++) {
    const prefix = encoded.subarray(0, n);
    if (n === 0) {
      expectError(
        thrown(() => decodeMessage(prefix)),
        WireError,
        { code: "MESSAGE_EMPTY" },
      );
    } else if (n < header) {
      expectError(
        thrown(() => decodeMessage(prefix)),
        WireError,
        { code: "MESSAGE_TRUNCATED" },
      );
    } else {
      expect(decodeMessage(prefix).format).toBe(decodeMessage(encoded).format);
    }
  }
}

describe("C2C", () => {
  test("direct and broadcast round trip with random address and data (seed 10)", () => {
    const rng = new Prng(10);
    for (let i = 0; i < 300; i++) {
      const type = rng.pick([C2CType.DIRECT, C2CType.BROADCAST]);
      const address = rng.bytes(ID_BYTES);
      const data = rng.bytes(rng.length(i < 5 ? MAX_MESSAGE_DATA - C2C_HEADER_BYTES : 200));
      const bytes = encodeC2C(type, address, data);
      expect(bytes[0]).toBe(type);
      expect(bytes.length).toBe(C2C_HEADER_BYTES + data.length);
      expect(decodeMessage(bytes)).toEqual({
        format: Format.C2C,
        type,
        address,
        queuedAt: 0,
        data,
      });
    }
  });

  test("stored round trip with random queued_at, including 0 and 2^32-1 (seed 11)", () => {
    const rng = new Prng(11);
    for (let i = 0; i < 300; i++) {
      const sender = rng.bytes(ID_BYTES);
      const queuedAt = i === 0 ? 0 : i === 1 ? 0xffffffff : rng.u32();
      const data = rng.bytes(rng.length(i < 5 ? MAX_C2C_DATA : 200));
      const bytes = encodeStored(sender, queuedAt, data);
      expect(bytes.subarray(0, 1)).toEqual(new Uint8Array([0x02]));
      expect(bytes.subarray(C2C_HEADER_BYTES, STORED_HEADER_BYTES)).toEqual(u32(queuedAt));
      expect(decodeMessage(bytes)).toEqual({
        format: Format.C2C,
        type: C2CType.STORED,
        address: sender,
        queuedAt,
        data,
      });
    }
  });

  test("every truncation below the header is rejected (seed 12)", () => {
    const rng = new Prng(12);
    for (let i = 0; i < 20; i++) {
      const data = rng.bytes(rng.int(0, 40));
      checkTruncations(encodeC2C(C2CType.DIRECT, rng.bytes(16), data), C2C_HEADER_BYTES);
      checkTruncations(encodeC2C(C2CType.BROADCAST, rng.bytes(16), data), C2C_HEADER_BYTES);
      checkTruncations(encodeStored(rng.bytes(16), rng.u32(), data), STORED_HEADER_BYTES);
    }
  });

  test("size limits, address length and type are checked when encoding", () => {
    const id = new Uint8Array(ID_BYTES);
    expect(encodeC2C(0, id, new Uint8Array(MAX_MESSAGE_DATA - 17)).length).toBe(MAX_MESSAGE_DATA);
    expectError(
      thrown(() => encodeC2C(0, id, new Uint8Array(MAX_MESSAGE_DATA - 16))),
      WireError,
      { code: "MESSAGE_TOO_LARGE" },
    );
    expect(encodeStored(id, 1, new Uint8Array(MAX_C2C_DATA)).length).toBe(MAX_MESSAGE_DATA);
    expectError(
      thrown(() => encodeStored(id, 1, new Uint8Array(MAX_C2C_DATA + 1))),
      WireError,
      { code: "MESSAGE_TOO_LARGE" },
    );
    for (const bad of [new Uint8Array(15), new Uint8Array(17)]) {
      expectError(
        thrown(() => encodeC2C(0, bad, new Uint8Array(1))),
        WireError,
        { code: "BAD_ADDRESS" },
      );
      expectError(
        thrown(() => encodeStored(bad, 0, new Uint8Array(1))),
        WireError,
        { code: "BAD_ADDRESS" },
      );
    }
    expectError(
      thrown(() => encodeC2C(C2CType.STORED, id, new Uint8Array(1))),
      WireError,
      { code: "BAD_TYPE" },
    );
  });
});

describe("C2S / S2C", () => {
  test("every type round trips with random bodies and timestamps (seed 20)", () => {
    const rng = new Prng(20);
    for (const type of CONTROL_TYPES) {
      for (let i = 0; i < 60; i++) {
        const timestamp = i === 0 ? 0 : i === 1 ? 0xffffffff : rng.u32();
        const body = rng.bytes(rng.length(i === 2 ? MAX_MESSAGE_DATA - CONTROL_HEADER_BYTES : 300));
        const bytes = encodeControl(type, body, timestamp);
        expect(bytes[0]).toBe(0x10 | type);
        expect(bytes.subarray(1, 5)).toEqual(u32(timestamp));
        expect(decodeMessage(bytes)).toEqual({ format: Format.CONTROL, type, timestamp, body });
        if (i < 10 && body.length <= 300) checkTruncations(bytes, CONTROL_HEADER_BYTES);
      }
    }
  });

  test("text and JSON bodies are UTF-8; a missing body is empty", () => {
    const stop = decodeMessage(encodeControl(ControlType.STOP, "fin – ende", 7));
    expect(stop.format === Format.CONTROL && decodeText(stop.body)).toBe("fin – ende");
    const config = decodeMessage(encodeControl(ControlType.CONFIG, { a: 1, b: "é" }, 7));
    expect(config.format === Format.CONTROL && decodeJson(config.body)).toEqual({ a: 1, b: "é" });
    expect(encodeControl(ControlType.HEARTBEAT, undefined, 1)).toEqual(
      new Uint8Array([0x10, 0, 0, 0, 1]),
    );
    expectError(
      thrown(() => encodeControl(0, new Uint8Array(MAX_MESSAGE_DATA - 4))),
      WireError,
      { code: "MESSAGE_TOO_LARGE" },
    );
  });

  test("bad text and non-object JSON are refused", () => {
    expectError(
      thrown(() => decodeText(new Uint8Array([0xc3, 0x28]))),
      WireError,
      { code: "BAD_TEXT" },
    );
    for (const text of ["[1]", "null", "3", '"x"', "{", ""]) {
      expectError(
        thrown(() => decodeJson(new TextEncoder().encode(text))),
        WireError,
        { code: "BAD_JSON" },
      );
    }
  });
});

describe("reserved and server-internal", () => {
  test("formats 3–15, control types 10–14 and C2C types 5–15 are MESSAGE_RESERVED", () => {
    const reserved: number[] = [];
    for (let format = 3; format <= 15; format++) {
      for (let type = 0; type <= 15; type++) reserved.push((format << 4) | type);
    }
    for (let type = 10; type <= 14; type++) reserved.push(0x10 | type); // 6 SESSION, 7 ROOM, 8 KEYS, 9 BATCH
    for (let type = 5; type <= 15; type++) reserved.push(type); // 3, 4: room messages
    const rest = new Uint8Array(40).fill(0x5a);
    for (const b0 of reserved) {
      for (const bytes of [new Uint8Array([b0]), cat(new Uint8Array([b0]), rest)]) {
        expectError(
          thrown(() => decodeMessage(bytes)),
          WireError,
          { code: "MESSAGE_RESERVED" },
        );
      }
    }
  });

  test("S2S decodes with any type and body (seed 30)", () => {
    const rng = new Prng(30);
    for (let type = 0; type <= 15; type++) {
      const body = rng.bytes(rng.length(100));
      const bytes = encodeS2S(type, body);
      expect(bytes[0]).toBe(0x20 | type);
      expect(decodeMessage(bytes)).toEqual({ format: Format.S2S, type, body });
    }
    expect(decodeMessage(new Uint8Array([0x2f]))).toEqual({
      format: Format.S2S,
      type: 15,
      body: new Uint8Array(0),
    });
  });
});

describe("ACK (control type 5)", () => {
  test("its body is the count as a u32; any other length reads as null", () => {
    for (const n of [0, 1, 255, 256, 65_536, 2 ** 32 - 1]) {
      const msg = decodeMessage(encodeControl(ControlType.ACK, encodeAckBody(n), 7));
      expect(msg).toMatchObject({ format: 1, type: 5, timestamp: 7 });
      expect(decodeAckBody((msg as { body: Uint8Array }).body)).toBe(n);
    }
    expect(Array.from(encodeAckBody(0x01020304))).toEqual([1, 2, 3, 4]);
    for (const len of [0, 1, 3, 5, 8]) expect(decodeAckBody(new Uint8Array(len))).toBeNull();
  });
});
