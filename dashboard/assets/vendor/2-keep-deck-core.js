// Ours, not vendored: the @deck.gl/json UMD bundle assigns its own exports to
// the global `deck`, replacing deck.gl's.  Keep the core before it loads.
window.deckCore = window.deck;
