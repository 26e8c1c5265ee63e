import { runCli } from '../../cli/runstore.js'

export interface CliResult { code: number, stdout: string, stderr: string }

/** `runstore <argv>` in this process, as a user runs it: its exit code and what it wrote; env adds to PATH alone. */
export async function cli (argv: string[], env: Record<string, string> = {}, options: { tty?: boolean } = {}): Promise<CliResult> {
  let stdout = ''
  let stderr = ''
  const code = await runCli(argv, {
    stdout: { write: (text: string) => { stdout += text } },
    stderr: { write: (text: string) => { stderr += text }, isTTY: options.tty === true },
    env: { PATH: process.env.PATH, ...env }
  })
  return { code, stdout, stderr }
}
