// stacmirror's replacement for STAC Browser's basemaps.config.js, copied in before the build.
//
// STAC Browser fixes its basemaps at build time. stacmirror builds it once per machine and serves
// it both online (an OpenStreetMap basemap) and with `serve --offline` (no basemap, so the page
// makes no request beyond the local server), so the list is read at run time from the
// `stacmirrorBasemaps` entry that `serve` writes into config.js.

export default function configureBasemap() {
  const config = window.STAC_BROWSER_CONFIG || {};
  const layers = config.stacmirrorBasemaps;
  return Array.isArray(layers) ? layers.map(layer => Object.assign({}, layer)) : [];
}
