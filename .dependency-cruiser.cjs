/** `npm run lint` fails on any import cycle in lib/ (type-only imports count: they tie the modules' designs). */
module.exports = {
    forbidden: [
        {
            name: "no-cycles-in-lib",
            severity: "error",
            comment: "lib/ imports point one way (docs/architecture.md): cli → api → request/options → backend → native.",
            from: { path: "^lib/" },
            to: { circular: true },
        },
    ],
    options: {
        doNotFollow: { path: "node_modules" },
        tsPreCompilationDeps: true,
        tsConfig: { fileName: "tsconfig.json" },
    },
};
