// Render the formulas pymdownx.arithmatex marks (generic mode: \( \) inline, \[ \] display)
// with the KaTeX copy shipped beside this file, so formulas show without a network. A formula
// KaTeX cannot parse stays as raw TeX and is reported with console.error, which the
// documentation's browser test treats as a failure.
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll(".arithmatex").forEach(function (element) {
    renderMathInElement(element, {
      delimiters: [
        { left: "\\(", right: "\\)", display: false },
        { left: "\\[", right: "\\]", display: true },
      ],
    });
  });
});
