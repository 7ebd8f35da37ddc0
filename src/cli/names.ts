/** Client names looked up once per ID (CLIENT_STATUS) and kept. */
import type { Client } from "../client/client.ts";

export class NameCache {
  readonly #client: Client;
  readonly #names = new Map<string, Promise<string>>();

  constructor(client: Client) {
    this.#client = client;
    this.#names.set(client.id, Promise.resolve(client.name));
  }

  /** The name of `id`, or the ID itself when it cannot be found. */
  get(id: string): Promise<string> {
    let name = this.#names.get(id);
    if (!name) {
      name = this.#client
        .clientStatus([id])
        .then(([e]) => (e && "name" in e ? e.name : id))
        .catch(() => {
          this.#names.delete(id); // try again next time
          return id;
        });
      this.#names.set(id, name);
    }
    return name;
  }

  /** Records a name already known. */
  set(id: string, name: string): void {
    this.#names.set(id, Promise.resolve(name));
  }
}
