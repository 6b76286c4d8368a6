// @picotron/transformers: our stand-in for the parts of Hugging Face `transformers` the tutorial uses,
// AutoConfig.from_pretrained (loadConfig) and AutoTokenizer.from_pretrained (loadTokenizer).
export { fromHfConfig, loadConfig, PRESETS, type LlamaConfig } from "./config.ts";
export { loadTokenizer, paddedVocabSize, TokenizerError, type Tokenizer } from "./tokenizer.ts";
