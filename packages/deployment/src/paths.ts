import * as path from 'node:path';

/** The repository's top level (manage.ts, terraform.tfvars, terraform/, dist/, rules/). */
export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');

/** The repository's one configuration file. */
export const DEFAULT_TFVARS_PATH = path.join(REPO_ROOT, 'terraform.tfvars');

/** The root Terraform module. */
export const TERRAFORM_DIR = path.join(REPO_ROOT, 'terraform');

/** Where `manage.ts build` writes the Lambda zips and Terraform reads them. */
export const LAMBDA_DIST_DIR = path.join(REPO_ROOT, 'dist', 'lambda');

/** The repository's YARA rules (own and cloned). */
export const RULES_DIR = path.join(REPO_ROOT, 'rules');
