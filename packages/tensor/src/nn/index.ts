export { Module, Parameter } from "./module.ts";
export { Linear, Embedding, RMSNorm } from "./layers.ts";
