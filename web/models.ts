// The models the web page offers, in one list: the page's model select shows them and the server
// sends exactly these checkpoint files. To offer another, add its entry here.

export interface BundledModel {
  /** the select's value */
  id: string;
  /** what the select shows */
  label: string;
  /** the checkpoint, relative to the repository root; the server sends it at the same path */
  file: string;
  /** the prompt the page starts with */
  prompt: string;
}

export const BUNDLED_MODELS: readonly BundledModel[] = [
  {
    id: "digits",
    label: "digits (MNIST, 32×32)",
    file: "checkpoints/pixart_mnist.safetensors",
    prompt: "seven",
  },
];
