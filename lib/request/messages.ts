import type { ImageInput } from "../images.js";

export type Role = "system" | "user" | "assistant";
/** A piece of message content: text, or an image placed at that point. */
export type ContentPart = string | { image: ImageInput };
export interface ChatMessage {
    role: Role;
    content: string | ContentPart[];
}
