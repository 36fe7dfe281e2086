// Ours, not vendored: one global with deck.gl core and JSONConverter.
window.deckJson = window.deck;
window.deck = Object.assign({}, window.deckCore, window.deckJson);
