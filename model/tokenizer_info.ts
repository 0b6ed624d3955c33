// The tokenizer settings recorded in stage-2 checkpoints (docs/spec.md §4).
export const TOKENIZER_INFO = {
  kind: "utf8-bytes",
  lowercase: true,
  trim: true,
  collapse_whitespace: true,
  token: "byte+1",
  pad: 0,
  vocab_size: 257,
};
