import { describe, expect, test } from "bun:test";
import { escapeBytes, escapeControls, hasControls } from "../src/text/escape";

describe("escapeControls", () => {
  test("every unsafe class becomes a visible escape", () => {
    const unsafe: number[] = [];
    for (let c = 0; c <= 0x1f; c++) if (c !== 0x09) unsafe.push(c);
    for (let c = 0x7f; c <= 0x9f; c++) unsafe.push(c);
    unsafe.push(0x2028, 0x2029, 0x200e, 0x200f, 0x061c);
    for (let c = 0x202a; c <= 0x202e; c++) unsafe.push(c);
    for (let c = 0x2066; c <= 0x2069; c++) unsafe.push(c);
    for (const c of unsafe) {
      const out = escapeControls(`a${String.fromCharCode(c)}b`);
      expect(hasControls(out)).toBe(false);
      expect(out.startsWith("a\\")).toBe(true);
      expect(out.endsWith("b")).toBe(true);
    }
  });

  test("names what it escapes", () => {
    expect(escapeControls("ok\n[12:00:00] alice: hi")).toBe("ok\\n[12:00:00] alice: hi");
    expect(escapeControls("\x1b[2J\x9b2J\u0085\u2028\u202e")).toBe(
      "\\x1b[2J\\x9b2J\\x85\\u2028\\u202e",
    );
    expect(escapeControls("a\r\nb")).toBe("a\\r\\nb");
  });

  test("leaves ordinary text alone, tabs and backslashes included", () => {
    const text = "héllo\tworld C:\\path 日本語 👋🏽 عربي";
    expect(escapeControls(text)).toBe(text);
  });

  test("multiline keeps LF and nothing else", () => {
    expect(escapeControls("a\nb\rc\u2028d", { multiline: true })).toBe("a\nb\\rc\\u2028d");
  });
});

describe("escapeBytes", () => {
  test("valid UTF-8 decodes as text", () => {
    expect(escapeBytes(new TextEncoder().encode("héllo 👋"))).toBe("héllo 👋");
  });

  test("invalid bytes are named, never U+FFFD", () => {
    const bytes = new Uint8Array([
      0x61, 0xff, 0xc3, 0xa9, 0xc0, 0xaf, 0xed, 0xa0, 0x80, 0xe2, 0x82, 0x1b,
    ]);
    const out = escapeBytes(bytes);
    expect(out).toBe("a\\xffé\\xc0\\xaf\\xed\\xa0\\x80\\xe2\\x82\\x1b");
    expect(out.includes("\ufffd")).toBe(false);
  });

  test("a truncated sequence at the end is named byte by byte", () => {
    expect(escapeBytes(new Uint8Array([0xf0, 0x9f, 0x91]))).toBe("\\xf0\\x9f\\x91");
  });
});
