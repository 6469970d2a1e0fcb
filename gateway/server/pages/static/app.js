// Starts GraphiQL on this page: requests go to this origin's /graphql only (the page's
// Content-Security-Policy allows nothing else). The first tab holds the demo query, and
// the request header that asks for a trace of each request.
(function () {
  "use strict";
  var root = document.getElementById("graphiql");
  var fetcher = GraphiQL.createFetcher({ url: window.location.origin + "/graphql" });
  var plugins = [GraphiQLPluginExplorer.explorerPlugin()];
  ReactDOM.createRoot(root).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: root.dataset.defaultQuery,
      // Each answer carries its trace (`extensions.trace`): the development caller has
      // the debug scope; delete the header to see an answer as a client would.
      defaultHeaders: root.dataset.defaultHeaders,
      plugins: plugins,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: false,
    }),
  );
})();
