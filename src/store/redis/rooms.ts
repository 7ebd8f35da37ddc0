/**
 * Rooms in the Redis store (store.ts, docs/PROTOCOL.md § Rooms): `room:{key}` hash
 * (name, owner, public, created_at), `room:{key}:members` hash (client → "state since
 * seq"), `room:{key}:seq` counter, `rooms:of:{client}` set of room keys. Creating a room
 * and changing a membership are one Lua script each (scripts.ts).
 */
import type IORedis from "ioredis";
import { StoreError } from "../../errors.ts";
import { nameKey } from "../../ids.ts";
import type { RoomMembership, RoomRecord, RoomState, RoomStore } from "../store.ts";
import { runScript, script } from "./lua.ts";
import { CREATE_ROOM, SET_MEMBERSHIP } from "./scripts.ts";

const S = { createRoom: script(CREATE_ROOM), setMembership: script(SET_MEMBERSHIP) };

/** Runs a Redis call, turning its failure into `StoreError` `STORE_UNAVAILABLE`. */
type Call = <T>(what: string, run: () => Promise<T>) => Promise<T>;

export class RedisRooms implements RoomStore {
  readonly #r: IORedis;
  readonly #p: string;
  readonly #call: Call;

  constructor(redis: IORedis, prefix: string, call: Call) {
    this.#r = redis;
    this.#p = prefix;
    this.#call = call;
  }

  #k(...parts: string[]): string {
    return this.#p + parts.join(":");
  }

  #eval(s: typeof S.createRoom, keys: string[], args: (string | number)[]) {
    return runScript(this.#r, s, keys, args);
  }

  #roomKeys(name: string, client: string): string[] {
    const key = nameKey(name);
    return [
      this.#k("room", key),
      `${this.#k("room", key)}:members`,
      this.#k("rooms", "of", client.toLowerCase()),
      `${this.#k("room", key)}:seq`,
      // Every change moves the registry version, so other nodes drop their room cache.
      this.#k("registry"),
    ];
  }

  async createRoom(r: RoomRecord): Promise<void> {
    const res = await this.#call("create room", () =>
      this.#eval(S.createRoom, this.#roomKeys(r.name, r.owner), [
        r.name,
        r.owner.toLowerCase(),
        r.public ? 1 : 0,
        r.createdAt,
        nameKey(r.name),
      ]),
    );
    if (res === "NAME_TAKEN")
      throw new StoreError("NAME_TAKEN", `the room "${r.name}" already exists`);
  }

  async getRoom(name: string): Promise<RoomRecord | null> {
    const h = await this.#call("room", () => this.#r.hgetall(this.#k("room", nameKey(name))));
    if (!h.name) return null;
    return {
      name: h.name,
      owner: String(h.owner),
      public: h.public === "1",
      createdAt: Number(h.created_at),
    };
  }

  async roomMembers(name: string): Promise<RoomMembership[]> {
    const [room, members] = this.#roomKeys(name, "");
    const [h, roomName] = await this.#call("room members", () =>
      Promise.all([this.#r.hgetall(members as string), this.#r.hget(room as string, "name")]),
    );
    if (!roomName) return [];
    return Object.entries(h)
      .map(([client, v]) => ({ client, ...parseMembership(v) }))
      .sort((a, b) => a.seq - b.seq)
      .map(({ client, state, since }) => ({ room: roomName, client, state, since }));
  }

  async roomsOf(client: string): Promise<RoomMembership[]> {
    const id = client.toLowerCase();
    const keys = (
      await this.#call("rooms of", () => this.#r.smembers(this.#k("rooms", "of", id)))
    ).sort();
    const out: RoomMembership[] = [];
    for (const key of keys) {
      const [name, v] = await this.#call("rooms of", () =>
        Promise.all([
          this.#r.hget(this.#k("room", key), "name"),
          this.#r.hget(`${this.#k("room", key)}:members`, id),
        ]),
      );
      if (!name || !v) continue;
      const { state, since } = parseMembership(v);
      out.push({ room: name, client: id, state, since });
    }
    return out;
  }

  async setMembership(
    name: string,
    client: string,
    state: RoomState | null,
    at: number,
  ): Promise<{ deleted: boolean }> {
    const deleted = await this.#call("membership", () =>
      this.#eval(S.setMembership, this.#roomKeys(name, client), [
        client.toLowerCase(),
        state ?? "",
        at,
        nameKey(name),
        this.#p,
      ]),
    );
    return { deleted: deleted === 1 };
  }

  async setRoomOwner(name: string, owner: string): Promise<void> {
    await this.#call("room owner", () =>
      this.#r
        .multi()
        .hset(this.#k("room", nameKey(name)), "owner", owner.toLowerCase())
        .incr(this.#k("registry"))
        .exec(),
    );
  }
}

function parseMembership(v: string): { state: RoomState; since: number; seq: number } {
  const [state, since, seq] = v.split(" ");
  return { state: state as RoomState, since: Number(since), seq: Number(seq) };
}
