import { describe, expect, it } from "vitest";
import { StopMatcher } from "../../lib/stop.js";

function feed(stops: string[], pieces: string[]) {
    const m = new StopMatcher(stops);
    const shown: string[] = [];
    let stopped = false;
    for (const piece of pieces) {
        const r = m.push(piece);
        shown.push(r.text);
        if (r.stopped) {
            stopped = true;
            break;
        }
    }
    if (!stopped) shown.push(m.flush());
    return { shown, text: shown.join(""), stopped, matched: m.matched };
}

describe("StopMatcher", () => {
    it("finds a stop string split across tokens and never shows part of it", () => {
        const r = feed(["</s>"], ["Hello", " wor", "ld<", "/", "s>", " more"]);
        expect(r.stopped).toBe(true);
        expect(r.text).toBe("Hello world");
        expect(r.matched).toBe("</s>");
        for (const chunk of r.shown) expect(chunk).not.toMatch(/<|\/s|s>/);
    });

    it("releases held-back text that turns out not to be a stop string", () => {
        const r = feed(["User:"], ["Dose: 5 mg. Us", "e twice daily"]);
        expect(r.stopped).toBe(false);
        expect(r.text).toBe("Dose: 5 mg. Use twice daily");
        expect(r.shown[0]).toBe("Dose: 5 mg. ");
    });

    it("matches exactly as given: the vicuna template's USER: does not match User:", () => {
        expect(feed(["User:"], ["ok\nUSER: next"]).stopped).toBe(false);
        expect(feed(["User:"], ["ok\nUser: next"]).text).toBe("ok\n");
    });

    it("stops at the earliest of several stop strings", () => {
        const r = feed(["</s>", "User:"], ["a User: b </s>"]);
        expect(r.text).toBe("a ");
        expect(r.matched).toBe("User:");
    });

    it("holds text at the end only while it can still become a stop string", () => {
        const m = new StopMatcher(["abc"]);
        expect(m.push("xxab").text).toBe("xx");
        expect(m.push("d").text).toBe("abd");
        expect(m.flush()).toBe("");
    });

    it("ignores empty stop strings", () => {
        expect(feed([""], ["text"]).text).toBe("text");
    });
});
