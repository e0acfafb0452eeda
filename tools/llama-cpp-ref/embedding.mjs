// Prints llama.cpp's embedding of TEXT under each GGUF model given, one JSON line per file:
// {"file", "tokens", "embedding"} (or {"file", "error"}). CPU only, prebuilt binaries only.
//   node embedding.mjs TEXT FILE.gguf...
import {getLlama} from "node-llama-cpp";

const [text, ...files] = process.argv.slice(2);
const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
for (const file of files) {
  try {
    const model = await llama.loadModel({modelPath: file});
    const context = await model.createEmbeddingContext({contextSize: 64});
    const tokens = model.tokenize(text);
    const embedding = await context.getEmbeddingFor(tokens);
    console.log(JSON.stringify({file, tokens, embedding: Array.from(embedding.vector)}));
    await context.dispose();
    await model.dispose();
  } catch (e) {
    console.log(JSON.stringify({file, error: String(e)}));
  }
}
await llama.dispose();
