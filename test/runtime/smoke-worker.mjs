// The smoke suite's worker_threads check (smoke.mjs): loads the addon and the model in this thread, runs one greedy
// request and posts its text.
import { parentPort, workerData } from "node:worker_threads";

try {
    const { loadModel, setLogger } = await import(workerData.dist);
    setLogger(null);
    const model = await loadModel({ model: workerData.modelPath, projector: workerData.projectorPath });
    const ctx = await model.createContext({ contextSize: 1024, parallel: 1 });
    const { data, width, height } = workerData.image;
    const result = await ctx.complete({ ...workerData.request, images: [{ data, width, height }] });
    await model.dispose();
    parentPort.postMessage({ text: result.text });
} catch (err) {
    parentPort.postMessage({ error: `${err.code ? `${err.code}: ` : ""}${err.message}` });
}
