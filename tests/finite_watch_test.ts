// kernels/finite.ts FiniteWatch: the first step at which a watched scalar is NaN or ±∞, recorded
// on the device and kept whatever comes after; finite values, however large, are not recorded.

import assert from "node:assert/strict";
import { FiniteWatch, tensor } from "../kernels/mod.ts";
import { ready } from "./helpers.ts";

await ready;

Deno.test("FiniteWatch records the first step a scalar is not finite, and only that one", async () => {
  for (const bad of [NaN, Infinity, -Infinity]) {
    for (const side of [0, 1]) {
      const watch = new FiniteWatch();
      const ok = tensor([3.4e38], [1]), worse = tensor([bad], [1]), tiny = tensor([-1e-40], [1]);
      watch.watch(1, ok, tiny);
      watch.watch(2, tiny, ok);
      assert.equal(await watch.firstBadStep(), 0, "finite values are not recorded");
      watch.watch(3, side ? ok : worse, side ? worse : ok);
      watch.watch(4, worse, worse);
      watch.watch(5, ok, ok);
      assert.equal(await watch.firstBadStep(), 3, `${bad} on side ${side}`);
      for (const t of [ok, worse, tiny]) t.dispose();
      watch.dispose();
    }
  }
});
