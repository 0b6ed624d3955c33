// The model's hyper-parameters, named as in the checkpoints' `config` metadata.

export interface ModelConfig {
  image_size: number;
  in_channels: number;
  patch_size: number;
  hidden_size: number;
  depth: number;
  num_heads: number;
  mlp_ratio: number;
  num_classes: number;
  /** 1: class-conditional; 2: text-conditional */
  stage: 1 | 2;
  drop_path: number;
  text_len: number;
  text_width: number;
  text_depth: number;
  text_heads: number;
}

export const DEFAULT_MODEL: ModelConfig = {
  image_size: 32,
  in_channels: 1,
  patch_size: 4,
  hidden_size: 128,
  depth: 4,
  num_heads: 4,
  mlp_ratio: 4,
  num_classes: 10,
  stage: 1,
  drop_path: 0,
  text_len: 16,
  text_width: 64,
  text_depth: 2,
  text_heads: 4,
};

/** Checks the relations between sizes; throws a one-line error naming the key. */
export function checkModelConfig(c: ModelConfig): void {
  const fail = (m: string) => {
    throw new Error(`model config: ${m}`);
  };
  if (c.image_size % c.patch_size !== 0) {
    fail(`patch_size ${c.patch_size} must divide image_size ${c.image_size}`);
  }
  if (c.hidden_size % c.num_heads !== 0) {
    fail(`num_heads ${c.num_heads} must divide hidden_size ${c.hidden_size}`);
  }
  if (c.hidden_size % 4 !== 0) fail(`hidden_size ${c.hidden_size} must be a multiple of 4`);
  if (c.in_channels !== 1 && c.in_channels !== 3) {
    fail(`in_channels must be 1 or 3, got ${c.in_channels}`);
  }
  if (c.stage === 2 && c.text_width % c.text_heads !== 0) {
    fail(`text_heads ${c.text_heads} must divide text_width ${c.text_width}`);
  }
  if (c.drop_path < 0 || c.drop_path >= 1) fail(`drop_path must be in [0, 1), got ${c.drop_path}`);
}

export function numTokens(c: ModelConfig): number {
  return (c.image_size / c.patch_size) ** 2;
}
