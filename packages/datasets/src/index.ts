// @picotron/datasets: our stand-in for Hugging Face `datasets` (load_dataset, and dataset.map(...,
// load_from_cache_file=True) for the tokenized tokens) and for torch.utils.data (DataLoader,
// DistributedSampler), plus the hub helpers that huggingface_hub gives Python.
export { BUILTIN_CORPUS_SOURCE, builtinStories } from "./builtin_corpus.ts";
export { DataLoader, DistributedSampler, type DataLoaderOptions } from "./data_loader.ts";
export { DatasetError, loadDocuments } from "./datasets.ts";
export { numChunks, tokenizer_group_text, type TextEncoder } from "./group_texts.ts";
export { causeMessage, hubEndpoint, isNetworkError, userCwd } from "./hub.ts";
export { cacheDir, cacheFile, loadOrBuildTokens, type TokenCacheRequest } from "./token_cache.ts";
