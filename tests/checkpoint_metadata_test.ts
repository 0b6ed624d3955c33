// A checkpoint's metadata is untrusted: what it names is checked before anything is built from it
// (model/checkpoint_bytes.ts).

import assert from "node:assert/strict";
import { checkpointClassNames } from "../model/checkpoint_bytes.ts";

Deno.test("class names: a list of strings, none, or a run's recorded null; anything else one line", () => {
  assert.deepEqual(checkpointClassNames({ classes: '["zero","one"]' }, "m"), ["zero", "one"]);
  assert.equal(checkpointClassNames({}, "m"), null);
  // a run on data without a class column records null
  assert.equal(checkpointClassNames({ classes: "null" }, "m"), null);
  for (const bad of ['["zero", 1]', '{"a": 1}', '["zero"', "7"]) {
    assert.throws(
      () => checkpointClassNames({ classes: bad }, "m.safetensors"),
      /^Error: checkpoint 'm\.safetensors': its classes metadata is not a JSON list of names/,
      bad,
    );
  }
});
