// The runs this browser keeps: each run's newest checkpoint and its log in IndexedDB, written in a
// transaction that has committed (durability "strict") before a save counts as done, so a tab
// that is closed, reloaded or loses its GPU keeps what it reported saved.

import type { SavedRun } from "./browser_run_store.ts";

const DB = "pixart-webgpu-train";
const RUNS = "runs";

function request<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

function openDb(): Promise<IDBDatabase> {
  if (!globalThis.indexedDB) return Promise.reject(new Error("this browser has no IndexedDB"));
  const r = indexedDB.open(DB, 1);
  r.onupgradeneeded = () => r.result.createObjectStore(RUNS, { keyPath: "id" });
  return request(r);
}

/** Runs one transaction on the runs' object store; resolves when it has committed. */
async function withRuns<T>(
  mode: IDBTransactionMode,
  f: (s: IDBObjectStore) => IDBRequest<T>,
): Promise<T> {
  const db = await openDb();
  try {
    const tx = db.transaction(RUNS, mode, { durability: "strict" });
    const result = request(f(tx.objectStore(RUNS)));
    await new Promise<void>((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onabort = tx.onerror = () => reject(tx.error ?? new Error("the transaction aborted"));
    });
    return await result;
  } finally {
    db.close();
  }
}

/** Keeps `run` (replacing what was kept of it). */
export async function keepRun(run: SavedRun): Promise<void> {
  await withRuns("readwrite", (s) => s.put(run));
}

/** The runs this browser keeps, newest save first. */
export async function savedRuns(): Promise<SavedRun[]> {
  const all = await withRuns("readonly", (s) => s.getAll() as IDBRequest<SavedRun[]>);
  return all.sort((a, b) => b.saved - a.saved);
}

export function forgetRun(id: string): Promise<undefined> {
  return withRuns("readwrite", (s) => s.delete(id));
}
