// Starts GraphiQL on this page: requests go to this origin's /graphql only (the page's
// Content-Security-Policy allows nothing else). The first tab holds the demo query.
(function () {
  "use strict";
  var root = document.getElementById("graphiql");
  var fetcher = GraphiQL.createFetcher({ url: window.location.origin + "/graphql" });
  var plugins = [GraphiQLPluginExplorer.explorerPlugin()];
  ReactDOM.createRoot(root).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: root.dataset.defaultQuery,
      plugins: plugins,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: false,
    }),
  );
})();
