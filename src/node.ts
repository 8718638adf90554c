/**
 * makemost for Node: everything in the main entry plus loading from and saving to model folders.
 */
export * from './index.js';
export { AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSequenceClassification, fromPretrained, savePretrained, type FromPretrainedOptions } from './models/pretrained.js';
export { AutoTokenizer } from './tokenizers/files.js';
export { openCheckpoint, readConfig, readGenerationConfig, saveSafetensors } from './io/hf_folder.js';
export { saveClassifier, loadClassifier, CLASSIFIER_NAME } from './generation/conditional/files.js';
