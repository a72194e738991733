export {
  ADDON_FILE,
  buildLambdaZips,
  BUNDLE_TARGET,
  COMPILED_RULES_FILE,
  LAMBDA_FUNCTIONS,
  LambdaBuildError,
  type BuildLambdaZipsOptions,
  type BuiltZip,
  type LambdaFunctionName,
} from './lambda-zips';
export { writeReproducibleZip, type ZipEntry } from './zip';
