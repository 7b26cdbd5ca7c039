/*
 * Draws the page's charts with the locally served plotly.js.
 *
 * The data comes from the <script type="application/json" id="chart-data"> element that Django's
 * json_script writes: {"charts": [{target, kind, title, x_title, y_title, x_category, series,
 * notes}]} (see registry/charts.py). Labels may be MLflow names, which are untrusted: Plotly reads
 * a little HTML in text, so every label is escaped before Plotly sees it. Notes (the NaN and
 * infinite values a chart cannot draw) are written under the chart as plain text. Hover text shows
 * each point's `labels`, the values as the server formats them for every page and mail.
 *
 * Nothing is sent anywhere: plotly.js 3+ offers to send a chart's data to Plotly's cloud unless
 * told not to, so CONFIG turns that off, names no server, and keeps only the mode bar buttons a
 * reviewer uses (zoom, pan, reset, save as PNG, all local).
 */
(function () {
  "use strict";

  var PALETTE = ["#2f6f8f", "#d08c3c", "#6a8f4e", "#8a5a9e", "#b5534f", "#4e8f85", "#7a7a7a", "#c2a23a"];
  var FONT = "-apple-system, BlinkMacSystemFont, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif";
  // The change chart's colours: quorum.css's --good and --bad, and a grey for "no change".
  var TONES = { better: "#1f7a4d", worse: "#b3362f", same: "#5b6673" };
  var CONFIG = {
    responsive: true,
    displaylogo: false,
    showSendToCloud: false,
    plotlyServerURL: "",
    modeBarButtons: [["zoom2d", "pan2d", "resetScale2d", "toImage"]],
    toImageButtonOptions: { format: "png", filename: "quorum-chart" },
  };

  function escapeText(value) {
    return String(value === null || value === undefined ? "" : value)
      .replace(/&/g, "&amp;")
      .replace(/</g, "&lt;")
      .replace(/>/g, "&gt;");
  }

  function changeTrace(series) {
    // Each metric's name and its change ("recall: +0.0200 (+2.4%)") label its bar on the left,
    // where a narrow chart still has room for them; the bar shows size, sign and colour.
    var names = series.y.map(function (name, index) {
      return escapeText(name) + ": " + escapeText(series.labels[index]);
    });
    return {
      type: "bar",
      orientation: "h",
      name: escapeText(series.name),
      x: series.x,
      y: names,
      marker: { color: series.tones.map(function (tone) { return TONES[tone] || TONES.same; }) },
      hovertemplate: "%{y}<extra></extra>",
    };
  }

  function traces(chart) {
    if (chart.kind === "change") {
      return chart.series.map(changeTrace);
    }
    return chart.series.map(function (series, index) {
      var color = PALETTE[index % PALETTE.length];
      var name = escapeText(series.name);
      var trace = {
        name: name,
        x: series.x.map(escapeText),
        y: series.y,
        customdata: (series.labels || []).map(escapeText),
        hovertemplate: "%{x}: %{customdata}<extra>" + name + "</extra>",
      };
      if (!chart.x_category) {
        trace.x = series.x;
        trace.hovertemplate = escapeText(chart.x_title) + " %{x}: %{customdata}<extra>" + name + "</extra>";
      }
      if (chart.x_type === "date") {
        // Holders over time: the label says the version and its main metric; the y value is
        // only where the line is drawn.
        var said = series.labels ? "%{customdata}" : "%{y}";
        trace.hovertemplate = "%{x}: " + said + "<extra>" + name + "</extra>";
      }
      if (chart.kind === "bar") {
        trace.type = "bar";
        trace.marker = { color: color };
      } else {
        trace.type = "scatter";
        trace.mode = series.x.length > 40 ? "lines" : "lines+markers";
        trace.line = { color: color, width: 2 };
        // Step lines (who held a target over time) keep their value until the next point.
        if (series.shape) {
          trace.line.shape = series.shape;
        }
        if (series.dash) {
          trace.line.dash = "dot";
        }
        if (series.axis === "y2") {
          trace.yaxis = "y2";
        }
        trace.marker = { color: color, size: 6 };
        trace.connectgaps = false;
      }
      return trace;
    });
  }

  function changeLayout(chart, element) {
    var base = layout(chart, element);
    var rows = chart.series.length ? chart.series[0].y.length : 0;
    base.showlegend = false;
    base.height = Math.max(160, 70 + rows * 34);
    base.margin = { l: 16, r: 16, t: 40, b: 44 };
    base.xaxis.type = "linear";
    base.xaxis.zeroline = true;
    base.xaxis.zerolinecolor = "#3e4c59";
    base.xaxis.ticksuffix = "%";
    // Zero always in view, a little room past the longest bar.
    var values = chart.series.length ? chart.series[0].x : [];
    var reach = Math.max.apply(null, values.map(Math.abs).concat([0.1]));
    base.xaxis.range = [
      Math.min(0, Math.min.apply(null, values)) - reach * 0.08,
      Math.max(0, Math.max.apply(null, values)) + reach * 0.08,
    ];
    base.yaxis.type = "category";
    base.yaxis.autorange = "reversed";
    base.yaxis.gridcolor = "rgba(0,0,0,0)";
    return base;
  }

  function layout(chart, element) {
    var result = baseLayout(chart, element);
    if (chart.y_nonnegative) {
      result.yaxis.rangemode = "nonnegative";  // counts and durations: no axis below zero
    }
    if (chart.y_integer) {
      result.yaxis.dtick = 1;  // version numbers: no v3.5
      result.yaxis.tickprefix = "v";
    }
    if (chart.y_range) {
      result.yaxis.range = chart.y_range;
      result.yaxis.autorange = false;
    }
    // A second scale on the right, for a series of another unit (a metric beside versions).
    // Only when asked: Plotly reads every yaxisN key it is given, even an undefined one.
    if (chart.y2_title !== undefined) {
      result.yaxis2 = {
        title: chart.y2_title ? { text: escapeText(chart.y2_title) } : undefined,
        overlaying: "y",
        side: "right",
        showgrid: false,
        automargin: true,
      };
    }
    return result;
  }

  function baseLayout(chart, element) {
    var small = element.clientWidth < 520;
    return {
      title: { text: escapeText(chart.title), font: { size: 14, color: "#1f2933" }, x: 0, xanchor: "left" },
      font: { family: FONT, size: 12, color: "#3e4c59" },
      margin: { l: 48, r: 16, t: 40, b: 40 },
      paper_bgcolor: "rgba(0,0,0,0)",
      plot_bgcolor: "rgba(0,0,0,0)",
      barmode: "group",
      bargap: 0.25,
      hovermode: "closest",
      showlegend: chart.series.length > 1 || chart.kind === "bar",
      // Top right beside the title while there is room; below the plot on a phone.
      legend: small && chart.series.length > 2
        ? { orientation: "h", x: 0, y: -0.25 }
        : { orientation: "h", x: 1, xanchor: "right", y: 1.12 },
      xaxis: {
        title: chart.x_title ? { text: escapeText(chart.x_title), standoff: 6 } : undefined,
        type: chart.x_type === "date" ? "date" : chart.x_category ? "category" : "linear",
        gridcolor: "#eef1f4",
        linecolor: "#cbd2d9",
        zeroline: false,
        automargin: true,
      },
      yaxis: {
        title: chart.y_title ? { text: escapeText(chart.y_title) } : undefined,
        gridcolor: "#eef1f4",
        zerolinecolor: "#cbd2d9",
        automargin: true,
      },
    };
  }

  function writeNotes(chart, element) {
    var notes = chart.notes || [];
    if (!notes.length) {
      return;
    }
    var list = document.createElement("ul");
    list.className = "chart-notes small muted";
    notes.forEach(function (note) {
      var item = document.createElement("li");
      item.textContent = note;
      list.appendChild(item);
    });
    // Chart and notes share one box, so in a grid of charts the notes stay under their chart.
    var box = document.createElement("div");
    box.className = "chart-box";
    element.parentNode.insertBefore(box, element);
    box.appendChild(element);
    box.appendChild(list);
  }

  function draw() {
    var source = document.getElementById("chart-data");
    if (!source || typeof Plotly === "undefined") {
      return;
    }
    var data = JSON.parse(source.textContent);
    (data.charts || []).forEach(function (chart) {
      var element = document.getElementById(chart.target);
      if (!element) {
        return;
      }
      writeNotes(chart, element);
      var shape = chart.kind === "change" ? changeLayout(chart, element) : layout(chart, element);
      Plotly.newPlot(element, traces(chart), shape, CONFIG);
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
