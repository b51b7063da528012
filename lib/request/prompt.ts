/** Prompt assembly: a request's prompt or messages → the text around each image, ready for the engine. */
import { randomBytes } from "node:crypto";
import { LlamaVlmError } from "../errors.js";
import type { ImageInput } from "../images.js";
import { checkObject, checkOneOf, checkString, checkText, invalid } from "../validate.js";
import type { ChatMessage } from "./messages.js";

/** mtmd's image marker: where an image goes in a raw `prompt`. */
export const MEDIA_MARKER = "<__media__>";

/** What a prompt is built from: the request's own fields (not yet validated). */
export interface PromptSource {
    prompt?: unknown;
    images?: unknown;
    messages?: unknown;
    chatTemplate?: unknown;
}

/** Renders messages with a chat template (the model's own when `template` is undefined). */
export type ApplyTemplate = (
    messages: readonly { role: string; content: string }[],
    options: { template?: string; addAssistant?: boolean },
) => string;

/**
 * Renders the prompt and splits it at the images: `textParts` has one more entry than `images`, image i sitting
 * between parts i and i + 1. A raw `prompt` takes its images at mtmd's marker (all first if there is none); with
 * `messages`, images go where the content parts put them, through a marker no user text contains.
 */
export function buildPrompt(
    r: PromptSource,
    applyTemplate: ApplyTemplate,
): { textParts: string[]; images: ImageInput[] } {
    if ((r.prompt === undefined) === (r.messages === undefined)) {
        throw new LlamaVlmError("INVALID_OPTION", 'A request needs exactly one of "prompt" or "messages"');
    }
    if (r.prompt !== undefined) {
        const prompt = checkText("prompt", r.prompt);
        const images = r.images ?? [];
        if (!Array.isArray(images)) throw invalid("images", "an array", images);
        if (prompt.length === 0 && images.length === 0) {
            throw new LlamaVlmError("INVALID_OPTION", 'The "prompt" is empty and the request has no images');
        }
        if (r.chatTemplate !== undefined)
            throw new LlamaVlmError("INVALID_OPTION", '"chatTemplate" applies to "messages", not "prompt"');
        const parts = prompt.split(MEDIA_MARKER);
        if (images.length > 0 && parts.length === 1) {
            return { textParts: [...images.map(() => ""), ...parts], images };
        }
        if (parts.length - 1 !== images.length) {
            throw new LlamaVlmError(
                "INVALID_OPTION",
                `The prompt has ${parts.length - 1} image marker(s) ${MEDIA_MARKER} but ${images.length} image(s) were given`,
            );
        }
        return { textParts: parts, images };
    }
    if (r.images !== undefined)
        throw new LlamaVlmError("INVALID_OPTION", 'With "messages", put images in message content, not "images"');
    if (!Array.isArray(r.messages) || r.messages.length === 0)
        throw invalid("messages", "a non-empty array", r.messages);
    const messages = r.messages as ChatMessage[];
    // A marker no user text contains, so typed markers never become image slots.
    let marker: string;
    const allText = JSON.stringify(
        messages.map((m: unknown) => {
            // Not validated yet (that happens below, message by message): anything may be here.
            const content = (m as { content?: unknown } | null)?.content;
            return Array.isArray(content) ? content.filter((p) => typeof p === "string") : content;
        }),
    );
    do marker = `<__llama_vlm_image_${randomBytes(8).toString("hex")}__>`;
    while (allText.includes(marker));
    const images: ImageInput[] = [];
    const rendered = messages.map((m, i) => {
        const msg = checkObject(`messages[${i}]`, m);
        const role = checkOneOf(`messages[${i}].role`, msg.role, ["system", "user", "assistant"] as const);
        const content = msg.content;
        if (typeof content === "string") return { role, content: checkText(`messages[${i}].content`, content) };
        if (!Array.isArray(content)) throw invalid(`messages[${i}].content`, "a string or an array of parts", content);
        let text = "";
        for (const [k, part] of content.entries()) {
            if (typeof part === "string") text += checkText(`messages[${i}].content[${k}]`, part);
            else if (typeof part === "object" && part !== null && "image" in part) {
                images.push(part.image);
                text += marker;
            } else throw invalid(`messages[${i}].content[${k}]`, "a string or { image }", part);
        }
        return { role, content: text };
    });
    const template =
        r.chatTemplate === undefined ? undefined : checkString("chatTemplate", r.chatTemplate, { nonEmpty: true });
    const prompt = applyTemplate(rendered, { ...(template ? { template } : {}), addAssistant: true });
    const textParts = prompt.split(marker);
    if (textParts.length - 1 !== images.length) {
        throw new LlamaVlmError("INVALID_OPTION", "The chat template dropped or repeated an image position");
    }
    return { textParts, images };
}
