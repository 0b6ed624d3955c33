// The models the web page offers: the bundled models (model/bundled.ts), in one list for the
// command line, the library and the page; the server sends exactly these checkpoint files.

export { BUNDLED_MODELS, type BundledModel } from "../model/bundled.ts";
