// The models that ship with the repository, in one list: `deno task sample --model NAME`, the
// library's loadPipeline(NAME) and the web page all read it. Files are relative to the repository
// root (the web server sends them at the same path).

export interface BundledModel {
  /** the name to ask for it by */
  id: string;
  /** what a menu shows */
  label: string;
  /** the checkpoint, relative to the repository root */
  file: string;
  /** a prompt it draws well, to start with */
  prompt: string;
}

export const BUNDLED_MODELS: readonly BundledModel[] = [
  {
    id: "digits",
    label: "digits (MNIST, 32×32)",
    file: "checkpoints/pixart_mnist.safetensors",
    prompt: "seven",
  },
  {
    id: "emoji",
    label: "emoji (Noto, 32×32, colour)",
    file: "checkpoints/pixart_emoji.safetensors",
    prompt: "couple with heart",
  },
  {
    id: "emoji-64",
    label: "emoji (Noto, 64×64, colour)",
    file: "checkpoints/pixart_emoji_64.safetensors",
    prompt: "couple with heart",
  },
];

/** The bundled model called `id`, or null. */
export function bundledModel(id: string): BundledModel | null {
  return BUNDLED_MODELS.find((m) => m.id === id) ?? null;
}
