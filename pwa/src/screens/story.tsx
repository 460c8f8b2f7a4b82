export function DealStory() { return <div class="screen"><h1>Story</h1></div> }
