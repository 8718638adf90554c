/**
 * Attribute-conditional decoding (methods.md §5.3), browser-safe part: labellers, the next-token attribute
 * classifier, its training data and training, and ACBS. Saving to and loading from folders is Node-only,
 * in `./files.js` (exported from `makemost/node`).
 */
export {
  attributeFromSpec, attributeName, customAttribute, exactLength, hasNoRepeatedNgram, minLength, noRepeatNgram, nonEmpty,
  type Attribute, type AttributeSpec,
} from './attributes.js';
export { AttributeClassifier, parseClassifierConfig, type AttributeScorer, type ClassifierConfig, type ScoreContext } from './classifier.js';
export { collectExamples, trainAttributeClassifier, trainClassifier, type AttributeExamples, type AttributeSampleOptions, type ClassifierTrainOptions } from './data.js';
export { conditionalBeamSearch, type ConditionalBeamOptions, type ConditionalOutput } from './acbs.js';
