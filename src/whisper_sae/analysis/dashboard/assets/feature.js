// A feature page's clips: the playhead on each spectrogram follows its audio (every animation frame while
// it plays, and on every seek), and a click on the spectrogram seeks the audio there.
// A clip's audio covers exactly the spectrogram's span (data-start..data-end, utterance seconds).
(function () {
  "use strict";
  for (const clip of document.querySelectorAll(".clip[data-start]")) {
    const audio = clip.querySelector("audio");
    const spec = clip.querySelector(".spec");
    const head = clip.querySelector(".playhead");
    if (!audio || !spec || !head) continue;
    const span = parseFloat(clip.dataset.end) - parseFloat(clip.dataset.start);
    const length = () => (isFinite(audio.duration) && audio.duration > 0 ? audio.duration : span);
    let frame = 0;

    function place() {
      const fraction = Math.min(Math.max(audio.currentTime / length(), 0), 1);
      head.style.left = (100 * fraction).toFixed(3) + "%";
      head.classList.toggle("shown", !audio.paused || audio.currentTime > 0);
    }
    function follow() {
      place();
      frame = audio.paused ? 0 : requestAnimationFrame(follow);
    }
    audio.addEventListener("play", () => { if (!frame) frame = requestAnimationFrame(follow); });
    for (const name of ["timeupdate", "seeked", "pause", "ended", "loadedmetadata"]) audio.addEventListener(name, place);
    spec.addEventListener("click", (event) => {
      const box = spec.getBoundingClientRect();
      const fraction = Math.min(Math.max((event.clientX - box.left) / box.width, 0), 1);
      audio.currentTime = fraction * length();
      place();
    });
    place();
  }
})();
