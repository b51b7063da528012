import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { llamaToolsDir } from "./tools.js";

const run = promisify(execFile);
const MARKER = "<<llama-vlm-response>>";

export interface ReferenceRun {
    /** The generated text, without the tool's framing. */
    text: string;
    /** Whether generation ended at an end-of-generation token (the tool then prints one more newline). */
    stdout: string;
    stderr: string;
}

/**
 * Runs the vendored llama-mtmd-cli greedily on one image + prompt (single-turn mode: the image goes
 * before the prompt, the model's chat template applies, rendered with Jinja) and returns the generated text.
 */
export async function runMtmdCli(opts: {
    model: string;
    projector: string;
    image: string;
    prompt: string;
    nPredict: number;
    contextSize?: number;
    endedAtEog?: boolean;
}): Promise<ReferenceRun> {
    // GPU runs compare against the tools built with the same backend, all layers offloaded
    // (LLAMA_VLM_TEST_TOOLS_DIR, set by scripts/vulkan-check.sh and gpu-check.sh, reaches llamaToolsDir()).
    const bin = path.join(llamaToolsDir(), "llama-mtmd-cli");
    const offload = process.env.LLAMA_VLM_TEST_GPU_LAYERS ? ["-ngl", process.env.LLAMA_VLM_TEST_GPU_LAYERS] : [];
    if (process.env.LLAMA_VLM_TEST_FLASH_ATTN === "off") offload.push("-fa", "off");
    const { stdout, stderr } = await run(
        bin,
        [
            "-m",
            opts.model,
            "--mmproj",
            opts.projector,
            "--image",
            opts.image,
            "-p",
            opts.prompt,
            "-n",
            String(opts.nPredict),
            "--temp",
            "0",
            "-c",
            String(opts.contextSize ?? 4096),
            "-t",
            "2",
            // llama-vlm renders a model's own template with Jinja (as llama-server does); the CLI defaults to
            // llama.cpp's built-in approximations, so ask for the same renderer.
            "--jinja",
            ...offload,
        ],
        { env: { ...process.env, MTMD_TEST_RESPONSE_MARKER: MARKER }, maxBuffer: 64 * 1024 * 1024 },
    );
    const at = stdout.indexOf(`${MARKER}\n`);
    if (at === -1) throw new Error(`llama-mtmd-cli printed no response marker:\n${stdout}\n${stderr.slice(-2000)}`);
    // The tool prints "\n" after reading the prompt, then the response, then "\n\n" — and one "\n" more
    // before those when it stopped at an end-of-generation token.
    let text = stdout.slice(at + MARKER.length + 1);
    if (!text.startsWith("\n")) throw new Error(`unexpected llama-mtmd-cli output: ${JSON.stringify(stdout)}`);
    text = text.slice(1);
    const framing = opts.endedAtEog ? "\n\n\n" : "\n\n";
    if (text.endsWith(framing)) text = text.slice(0, -framing.length);
    return { text, stdout, stderr };
}
