/**
 * Chat templates (Jinja, for `tokenizer.chat_template`) of the synthetic families. llama.cpp renders them with
 * its own Jinja engine and also recognises each one for its legacy, non-Jinja formatter.
 */

/**
 * Qwen2-VL / Qwen2.5-VL (chat_template.json of the Qwen releases). An image part becomes
 * `<|vision_start|><|image_pad|><|vision_end|>`; llama.cpp's mtmd instead wraps the image embeddings in
 * `<|vision_start|>`…`<|vision_end|>` itself wherever the media marker is.
 */
export const QWEN2_VL_TEMPLATE =
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}" +
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}" +
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}" +
    "<|im_start|>{{ message['role'] }}\n" +
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n" +
    "{% else %}{% for content in message['content'] %}" +
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}" +
    "{% set image_count.value = image_count.value + 1 %}" +
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}" +
    "<|vision_start|><|image_pad|><|vision_end|>" +
    "{% elif content['type'] == 'video' or 'video' in content %}" +
    "{% set video_count.value = video_count.value + 1 %}" +
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}" +
    "<|vision_start|><|video_pad|><|vision_end|>" +
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n" +
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

/**
 * SmolVLM (Idefics3): `<|im_start|>User: …<end_of_utterance>\nAssistant:`. The released template assumes
 * list-of-parts content; this one also takes plain string content, rendering it the way llama.cpp's built-in
 * `smolvlm` formatter does.
 */
export const SMOLVLM_TEMPLATE =
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}" +
    "{% if message['content'] is string %}{{ ': ' + message['content'] }}" +
    "{% else %}{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}" +
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{ line['text'] }}" +
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}{% endif %}" +
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}";

/**
 * Vicuna v1.1 (`USER: …\nASSISTANT:`), written to render exactly as llama.cpp's built-in `vicuna` formatter:
 * a system message followed by a blank line, no default system prompt, `</s>` after each assistant turn.
 */
export const VICUNA_TEMPLATE =
    "{% for message in messages %}" +
    "{% if message['role'] == 'system' %}{{ message['content'] + '\n\n' }}" +
    "{% elif message['role'] == 'user' %}{{ 'USER: ' + message['content'] + '\n' }}" +
    "{% elif message['role'] == 'assistant' %}{{ 'ASSISTANT: ' + message['content'] + eos_token + '\n' }}" +
    "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}";
