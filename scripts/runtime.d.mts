/** Types of runtime.mjs (plain JavaScript: it runs before node_modules exists). */
export function projectNodeVersion(root: string): string;
export function nodeBinaryPath(root: string, version: string): { pkg: string; bin: string };
export function ensureNodeBinary(root: string, version: string, log?: (line: string) => void): string;
