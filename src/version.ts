/** The version of this implementation (package.json's), shown by `--version` and SERVER_STATUS. */
export const VERSION = "0.1.0";
